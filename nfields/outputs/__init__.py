"""What a trained run produces for use elsewhere: meshes and point clouds, videos, camera paths."""
