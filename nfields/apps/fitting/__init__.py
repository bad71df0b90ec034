"""A backbone's encoder as a plain coordinate network, fitted to a 2D image or a 3D signed distance field."""
