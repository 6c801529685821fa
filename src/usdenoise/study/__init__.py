"""The denoise -> segment study: settings and run (`run`), arms, report."""
