"""`python -m lobe.gateway`: configuration from the environment only."""

from lobe.gateway.main import main

if __name__ == "__main__":
    main()
