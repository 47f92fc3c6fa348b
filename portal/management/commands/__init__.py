"""manage.py commands of the portal: seed_demo."""
