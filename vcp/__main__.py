from vcp.cli import main

main()
