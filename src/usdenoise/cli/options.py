"""Help texts and option declarations more than one command shares."""

DATA_HELP = "phantom, hc18:PATH, psfhs:PATH, zenodo:PATH or folder:PATH"
