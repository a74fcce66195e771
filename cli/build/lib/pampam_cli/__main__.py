from pampam_cli.main import main

main()
