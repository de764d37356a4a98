from tinyml.cli import main

main()
