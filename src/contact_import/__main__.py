from contact_import.cli import main

main()
