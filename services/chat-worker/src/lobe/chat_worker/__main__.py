"""`python -m lobe.chat_worker`: configuration from the environment only."""

from lobe.chat_worker.main import main

if __name__ == "__main__":
    main()
