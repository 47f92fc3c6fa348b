"""The portal's commands: demo data for `make run`."""
