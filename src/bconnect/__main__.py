from bconnect.cli.main import main

main()
