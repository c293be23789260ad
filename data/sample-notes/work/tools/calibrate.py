"""Two-point humidity calibration for Tern-4 loggers.

Used on the calibration bench in the hardware lab. The logger is placed in a
sealed jar above a saturated salt solution, one jar per reference point, and
this script reads the raw sensor values over the serial port, computes a
linear correction (gain and offset) and writes it to the logger.

Usage:
    python calibrate.py --port /dev/ttyUSB0 --serial T4-004519
"""

from __future__ import annotations

import argparse
import statistics
import time

# Serial link settings for the Tern-4 service port.
SERIAL_BAUD = 57600
SERIAL_TIMEOUT_S = 2.0

# Reference relative humidity (percent) above saturated salt solutions at
# 25 degrees C, as used on our bench.
REFERENCE_POINTS = {
    "MgCl2": 32.8,
    "NaCl": 75.3,
}

# The sensor must sit in each jar this long before sampling starts.
SETTLE_MINUTES = 45
# Number of readings averaged per reference point, one per second.
SAMPLES_PER_POINT = 120
# Acceptance limits. A unit outside these limits is rejected and sent to
# rework with the label "CAL-FAIL".
MAX_OFFSET_PCT = 2.5
MAX_GAIN_DEVIATION = 0.04
MAX_SAMPLE_STDDEV = 0.15
# Version of the calibration record stored on the logger.
CAL_RECORD_VERSION = 3


def read_samples(port, count: int = SAMPLES_PER_POINT) -> list[float]:
    """Read `count` raw humidity values from the logger's service port.

    The logger answers the command ``RH:RAW?`` with a single line holding the
    uncorrected relative humidity in percent.
    """
    values = []
    for _ in range(count):
        port.write(b"RH:RAW?\n")
        line = port.readline().decode("ascii").strip()
        values.append(float(line))
        time.sleep(1.0)
    return values


def compute_coefficients(low_raw: float, high_raw: float) -> tuple[float, float]:
    """Return (gain, offset) so that ``corrected = gain * raw + offset``.

    The low point is the MgCl2 jar and the high point the NaCl jar.
    """
    low_ref = REFERENCE_POINTS["MgCl2"]
    high_ref = REFERENCE_POINTS["NaCl"]
    gain = (high_ref - low_ref) / (high_raw - low_raw)
    offset = low_ref - gain * low_raw
    return gain, offset


def validate(gain: float, offset: float, stddevs: list[float]) -> list[str]:
    """Check the result against the acceptance limits.

    Returns a list of problems; an empty list means the unit passes.
    """
    problems = []
    if abs(gain - 1.0) > MAX_GAIN_DEVIATION:
        problems.append(f"gain {gain:.4f} deviates more than {MAX_GAIN_DEVIATION}")
    if abs(offset) > MAX_OFFSET_PCT:
        problems.append(f"offset {offset:.2f} %RH exceeds {MAX_OFFSET_PCT}")
    for sd in stddevs:
        if sd > MAX_SAMPLE_STDDEV:
            problems.append(f"unstable readings (stddev {sd:.3f}); jar not settled?")
    return problems


def write_to_device(port, gain: float, offset: float) -> None:
    """Store the coefficients on the logger with the ``CAL:SET`` command."""
    cmd = f"CAL:SET {CAL_RECORD_VERSION} {gain:.5f} {offset:.3f}\n"
    port.write(cmd.encode("ascii"))
    reply = port.readline().decode("ascii").strip()
    if reply != "OK":
        raise RuntimeError(f"logger rejected calibration: {reply!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    parser.add_argument("--serial", required=True, help="logger serial number, e.g. T4-004519")
    args = parser.parse_args()

    import serial  # pyserial; imported here so the module can be read without it

    with serial.Serial(args.port, SERIAL_BAUD, timeout=SERIAL_TIMEOUT_S) as port:
        means, stddevs = [], []
        for salt in ("MgCl2", "NaCl"):
            input(f"Put {args.serial} in the {salt} jar, wait {SETTLE_MINUTES} min, press Enter")
            samples = read_samples(port)
            means.append(statistics.mean(samples))
            stddevs.append(statistics.stdev(samples))
        gain, offset = compute_coefficients(means[0], means[1])
        problems = validate(gain, offset, stddevs)
        if problems:
            print("CAL-FAIL:", *problems, sep="\n  ")
            raise SystemExit(1)
        write_to_device(port, gain, offset)
        print(f"{args.serial}: gain={gain:.5f} offset={offset:.3f} written")


if __name__ == "__main__":
    main()
