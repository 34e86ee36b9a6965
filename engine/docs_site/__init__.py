"""The static documentation site (`engine docs PATH`): HTML pages with inline SVG charts, written
from the project's compiled DAG and the workspace's last committed state. Works offline: no CDN,
no JavaScript, no request leaves the page."""
