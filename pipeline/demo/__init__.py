"""The self-contained demo: synthetic scenes, a simulated crowd, seeding a project, a simulated review."""
