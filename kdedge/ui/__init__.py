"""Terminal output: the consoles, progress bars and warnings (console.py) and tables fitted to the terminal's
width (tables.py). Every layer may print through it; it imports nothing of kdedge but its own modules."""
