"""AES-128-GCM backends behind one interface (gcm.py)."""
