"""Files kdedge writes and the file system's refusals: atomic writes and checksummed safetensors (atomic.py,
integrity.py), a full disk or a read-only folder said in one line (fsguard.py), and the run directory with
its lock (rundir.py)."""
