"""Plain helpers shared by test modules (test modules do not import each other)."""

from __future__ import annotations

# Two small invoices, for batch jobs that extract the same fields from each.
INVOICES = {
    "invoices/acme-2024-03.md": """# Invoice from Acme Tools

Invoice number INV-2024-031, dated 12 March 2024.
Amount due: 1250 EUR for one soldering station and one hot-air rework station.
Billing contact: Maria Lind.
""",
    "invoices/nordic-2024-04.md": """# Invoice from Nordic Cables

Invoice number NC-7781, dated 3 April 2024.
Amount due: 480 EUR for forty shielded USB cables.
Billing contact: Olof Berg.
""",
}
