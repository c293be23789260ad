"""Generate the binary files of the sample corpus (PDF and DOCX).

Writes, from text held in this script:
  sample-notes/work/vendors/brandt-ro350-manual.pdf   (4 pages, fpdf2)
  sample-notes/work/hr/onboarding-guide.docx          (python-docx)

Run with:  python data/build_sample_docs.py
Output is deterministic (fixed metadata dates), so re-running does not create
spurious diffs.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

from docx import Document
from fpdf import FPDF

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "sample-notes"
PDF_PATH = OUT_DIR / "work" / "vendors" / "brandt-ro350-manual.pdf"
DOCX_PATH = OUT_DIR / "work" / "hr" / "onboarding-guide.docx"
FIXED_DATE = dt.datetime(2024, 5, 6, 9, 0, 0, tzinfo=dt.timezone.utc)

# --------------------------------------------------------------------------
# PDF: equipment manual. One page per section; every page has its own facts.
# Keep the text ASCII (core font Helvetica only covers latin-1).
# Each section: (heading, [paragraph, ...]). A paragraph starting with "- " is
# rendered as a bullet line.
# --------------------------------------------------------------------------
PDF_TITLE = "Brandt RO-350 Benchtop Reflow Oven - Operator Manual and Warranty"
PDF_PAGES = [
    (
        "1. Product Overview and Technical Data",
        [
            "Thank you for choosing the Brandt RO-350, a benchtop batch reflow oven "
            "for lead-free and leaded solder pastes, made by Brandt Thermal Systems "
            "GmbH, Kassel, Germany. This manual covers installation, warranty, "
            "maintenance and troubleshooting.",
            "This unit was supplied to: Lindqvist Instruments AB, hardware lab. "
            "Serial number: BTS-RO350-22871. Delivery date: 4 October 2023. "
            "Order reference: PO-2023-0877.",
            "Technical data:",
            "- Maximum process temperature: 350 deg C",
            "- Usable drawer area: 350 x 280 mm",
            "- Heating: 4 infrared quartz elements plus forced convection",
            "- Power supply: 230 V AC, 50 Hz, 16 A; rated power 2.4 kW",
            "- Heating rate: up to 3.5 deg C per second",
            "- Number of stored profiles: 40",
            "- Weight: 31 kg",
            "- Exhaust connection: 100 mm duct, minimum extraction 120 m3 per hour",
            "Install the oven on a non-flammable surface with at least 20 cm of free "
            "space on all sides. Never operate the oven without the exhaust "
            "connected: flux fumes are harmful when inhaled.",
        ],
    ),
    (
        "2. Warranty Terms",
        [
            "Brandt Thermal Systems warrants the RO-350 against defects in materials "
            "and workmanship for 24 months from the delivery date. For serial number "
            "BTS-RO350-22871 the warranty therefore ends on 4 October 2025.",
            "Consumable and wear parts have a shorter warranty:",
            "- Infrared heating elements: 12 months",
            "- Door gasket and flux filter: 6 months",
            "- Thermocouples: 6 months",
            "The warranty does not cover damage caused by operation without exhaust "
            "extraction, by cleaning agents other than isopropyl alcohol, by "
            "exceeding 350 deg C, or by repairs carried out by anyone other than "
            "Brandt or an authorised service partner.",
            "How to make a claim: request a return authorisation (RMA) number by "
            "e-mail from warranty@brandt-thermal.example within 10 business days of "
            "discovering the fault. Units returned without an RMA number will be "
            "refused. Brandt pays return shipping for accepted claims within the EU.",
            "Extended warranty: the warranty can be extended by 12 months at a time, "
            "up to a total of 5 years, for EUR 640 per year. The extension must be "
            "ordered before the current warranty expires.",
        ],
    ),
    (
        "3. Maintenance Schedule",
        [
            "Regular maintenance keeps the temperature profile accurate and the "
            "warranty valid. Record every maintenance task in the log book supplied "
            "with the oven.",
            "- Daily: wipe the drawer and glass window with isopropyl alcohol once "
            "the oven is below 40 deg C.",
            "- Weekly: empty and clean the flux trap (condensate tray) under the "
            "exhaust outlet.",
            "- Monthly: check the thermocouple readings against a calibrated "
            "reference probe. Permitted deviation: plus or minus 3 deg C.",
            "- Every 6 months: replace the flux filter cartridge, part number "
            "BTS-FF-0412.",
            "- Every 12 months: replace the door gasket, part number BTS-DG-0358, "
            "and have the safety cut-out tested by a service partner.",
            "- Every 2,000 operating hours: lubricate the convection fan bearing "
            "with high-temperature grease, part number BTS-GR-0090.",
            "The operating-hours counter is shown under Menu > Service > Hours. The "
            "oven displays the reminder code M1 when a filter change is due and M2 "
            "when the fan bearing is due.",
        ],
    ),
    (
        "4. Troubleshooting and Service Contacts",
        [
            "Error codes shown on the display:",
            "- E03: door opened during a profile. Close the door and restart the "
            "profile.",
            "- E07: thermocouple open circuit. Check the thermocouple plug at the "
            "back of the drawer.",
            "- E12: over-temperature. The safety cut-out has tripped at 365 deg C. "
            "Let the oven cool down and contact service before using it again.",
            "- E15: exhaust airflow too low. Check the extraction fan and the flux "
            "filter.",
            "- E21: heating element failure. One or more elements draw no current.",
            "Factory service hotline: +49 561 4470 2290, Monday to Friday "
            "08:00-17:00 CET. Have the serial number ready.",
            "Authorised service partner for Sweden, Norway and Finland: Nordic "
            "Reflow Service AB, Vasteras. Telephone 021-480 33 10. Response time "
            "for on-site visits: 3 business days.",
            "Firmware updates for the oven controller are published on the Brandt "
            "customer portal. Current controller firmware: version 4.2.",
        ],
    ),
]


class ManualPDF(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 6, PDF_TITLE, new_x="LMARGIN", new_y="NEXT", align="C")
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Page {self.page_no()} of {len(PDF_PAGES)}", align="C")


def build_pdf(path: Path) -> None:
    pdf = ManualPDF(format="A4")
    pdf.set_title(PDF_TITLE)
    pdf.set_author("Brandt Thermal Systems GmbH")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_auto_page_break(auto=True, margin=20)
    for heading, paragraphs in PDF_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        for para in paragraphs:
            pdf.set_font("Helvetica", "", 11)
            if para.startswith("- "):
                pdf.set_x(pdf.l_margin + 6)
                pdf.multi_cell(0, 6, "* " + para[2:], new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            else:
                pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


# --------------------------------------------------------------------------
# DOCX: HR onboarding guide. Entries are (kind, text) with kind one of
# "title", "h1", "h2", "p", "bullet".
# --------------------------------------------------------------------------
DOCX_CONTENT = [
    ("title", "New Employee Onboarding Guide"),
    ("p", "Lindqvist Instruments AB, Human Resources. Version 2024-02. Questions "
          "about this guide go to your HR partner, Helena Borg."),
    ("h1", "Welcome"),
    ("p", "Welcome to Lindqvist Instruments. We design and build environmental "
          "sensors and the systems that collect their data, and we are about 70 "
          "people in Uppsala and Gothenburg. This guide explains what happens "
          "before and during your first weeks, and the rules you will need most "
          "often during your first year."),
    ("h1", "Before Your First Day"),
    ("h2", "Contract and Paperwork"),
    ("p", "Sign your employment contract electronically and enter your bank "
          "details and tax information in the HR system, Pulse, at least 10 days "
          "before your start date. Salary is paid on the 25th of each month; if "
          "the 25th falls on a weekend, it is paid on the Friday before."),
    ("h2", "Choosing Your Equipment"),
    ("p", "About three weeks before you start, you will receive a form to choose "
          "your laptop (a 14-inch Windows laptop or a 14-inch MacBook) and a "
          "phone. You also receive a one-time home-office allowance of SEK 6,000 "
          "for a chair, desk or monitor, to be used within your first 6 months. "
          "Keep the receipts; the allowance is paid with your salary."),
    ("h1", "Your First Week"),
    ("h2", "Day One"),
    ("p", "Come to the main reception at 09:00 on your first day. Your manager "
          "meets you there, and the first morning starts with a welcome breakfast "
          "with the other people who start that month. In the afternoon you get "
          "your badge, your equipment and a tour of the building."),
    ("h2", "The Buddy Programme"),
    ("p", "Every new employee gets a buddy from another team for the first 3 "
          "months. Your buddy is the person to ask the questions you do not want "
          "to ask your manager. Meet at least every second week; the company pays "
          "for one buddy lunch a month, up to SEK 250 per person."),
    ("h2", "Mandatory Introductory Courses"),
    ("bullet", "Lab safety and ESD course, half a day, must be completed within "
               "your first 2 weeks before you may work in the labs."),
    ("bullet", "Information security e-learning, about 45 minutes, within the "
               "first 30 days."),
    ("bullet", "Code of conduct, read and sign in Pulse within the first week."),
    ("h1", "Working Hours and Time Off"),
    ("h2", "Working Hours"),
    ("p", "Full-time work is 40 hours a week. We use flexible hours with a core "
          "time of 09:30 to 15:00, when everyone is expected to be available. Up "
          "to 2 days a week can be worked from home after agreement with your "
          "manager."),
    ("h2", "Vacation"),
    ("p", "All employees get 28 days of paid vacation per year, three more than "
          "the legal minimum. The vacation year runs from 1 April to 31 March. At "
          "least 4 consecutive weeks can be taken in the summer period June to "
          "August. Up to 5 unused days can be saved each year."),
    ("h2", "Sick Leave"),
    ("p", "Report sick to your manager and in Pulse before 09:00 on the first "
          "day. From the 8th calendar day of sickness a doctor's certificate is "
          "needed."),
    ("h1", "Probation and Development"),
    ("h2", "Probation Period"),
    ("p", "New permanent employees start with a probation period of 6 months. "
          "You and your manager hold check-in meetings after 1, 3 and 5 months. "
          "The last check-in ends with a decision on permanent employment."),
    ("h2", "Development Talks and Training"),
    ("p", "Development talks are held once a year in October. Every employee has "
          "a personal training budget of SEK 15,000 per year for courses, "
          "conferences or books; unused budget does not carry over."),
    ("h1", "Benefits"),
    ("bullet", "Wellness allowance of SEK 5,000 per year for sports and exercise."),
    ("bullet", "Occupational pension according to the ITP collective agreement."),
    ("bullet", "Fruit and coffee in all offices; breakfast together every Friday "
               "at 08:30."),
    ("bullet", "Bicycle service once a year, booked through HR in April."),
]


def _normalise_zip(path: Path) -> None:
    """Rewrite the docx zip with fixed timestamps so output is reproducible."""
    data = path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(
        buf, "w", zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            new = zipfile.ZipInfo(info.filename, date_time=(2024, 5, 6, 9, 0, 0))
            new.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(new, src.read(info.filename))
    path.write_bytes(buf.getvalue())


def build_docx(path: Path) -> None:
    doc = Document()
    props = doc.core_properties
    props.title = "New Employee Onboarding Guide"
    props.author = "Lindqvist Instruments HR"
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_modified_by = "Lindqvist Instruments HR"
    props.revision = 1
    for kind, text in DOCX_CONTENT:
        if kind == "title":
            doc.add_heading(text, level=0)
        elif kind == "h1":
            doc.add_heading(text, level=1)
        elif kind == "h2":
            doc.add_heading(text, level=2)
        elif kind == "bullet":
            doc.add_paragraph(text, style="List Bullet")
        else:
            doc.add_paragraph(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    _normalise_zip(path)


def main() -> None:
    build_pdf(PDF_PATH)
    build_docx(DOCX_PATH)
    print(f"wrote {PDF_PATH.relative_to(HERE)}")
    print(f"wrote {DOCX_PATH.relative_to(HERE)}")


if __name__ == "__main__":
    main()
