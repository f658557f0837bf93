"""Live and cold snapshots of a file root disk, full or delta: the run
(run), its decisions (plan), the copy (live, cold, quiesce), the image
written (extract, base) and its upload (upload)."""
