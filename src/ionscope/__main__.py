# SPDX-License-Identifier: GPL-3.0-or-later
from ionscope.cli import main

raise SystemExit(main())
