"""`python -m esp_ota_doit.rehearsal.standin`: run the idf.py stand-in."""

import sys

from .cli import main

sys.exit(main())
