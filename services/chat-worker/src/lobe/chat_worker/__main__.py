from lobe.chat_worker.main import main

main()
