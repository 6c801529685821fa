from usdenoise.cli import main

main()
