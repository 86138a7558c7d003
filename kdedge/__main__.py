"""`python -m kdedge ...` (what `torchrun -m kdedge` runs)."""

from kdedge.cli import main

if __name__ == "__main__":
    main()
