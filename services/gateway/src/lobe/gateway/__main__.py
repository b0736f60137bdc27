from lobe.gateway.main import main

main()
