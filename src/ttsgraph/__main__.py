"""`python -m ttsgraph` runs the command line."""

from ttsgraph.cli import main

main()
