"""`python -m mmdemo …`: see mmdemo/cli.py."""
from .cli import main

raise SystemExit(main())
