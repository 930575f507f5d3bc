#!/usr/bin/env python3
"""Writes the bundled arrival traces (time in seconds, requests per second), deterministically.

    python3 examples/traces/make_traces.py

- diurnal-chat.csv: 24 h of a chat service at 1-minute resolution. A day-night cycle (night
  ~3 req/s, afternoon peak ~45 req/s), minute-to-minute noise, and four bursts of 10-25 min
  (a newsletter, a batch of users from a partner) at +40 % to +90 %.
- launch-day.csv: 10 h of a product launch: 2 req/s, then a ramp to ~70 req/s over three
  hours in steps as the news spreads, a plateau, and an evening decline.
- batch-embedding.csv: 6 h: a trickle of online embedding calls (1-2 req/s) and a batch job
  that submits 150 req/s from 1:00 to 3:30 and 100 req/s from 4:00 to 4:45.
"""
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, rows):
    with open(os.path.join(HERE, name), "w") as f:
        f.write("t_seconds,requests_per_second\n")
        for t, r in rows:
            f.write(f"{t},{r:.3f}\n")


def diurnal():
    rng = random.Random(20261130)
    bursts = [(9.5, 15, 0.6), (13.0, 25, 0.9), (16.25, 10, 0.4), (20.5, 20, 0.7)]  # start h, minutes, extra
    rows = []
    for m in range(24 * 60 + 1):
        h = m / 60
        day = 0.5 - 0.5 * math.cos(2 * math.pi * (h - 4) / 24)  # 0 at 04:00, 1 at 16:00
        base = 3 + 42 * day ** 1.6
        extra = sum(e for s, d, e in bursts if s <= h < s + d / 60)
        rows.append((m * 60, max(0.0, base * (1 + extra) * (1 + rng.gauss(0, 0.05)))))
    return rows


def launch():
    rng = random.Random(7)
    rows = []
    for m in range(10 * 60 + 1):
        h = m / 60
        if h < 1:
            r = 2
        elif h < 4:
            steps = [(1, 8), (1.5, 20), (2.25, 38), (3, 55), (3.5, 70)]
            r = max(v for s, v in steps if h >= s)
        elif h < 8:
            r = 70
        else:
            r = 70 - (h - 8) * 25
        rows.append((m * 60, max(0.5, r * (1 + rng.gauss(0, 0.04)))))
    return rows


def batch():
    rng = random.Random(11)
    rows = []
    for m in range(6 * 60 + 1):
        h = m / 60
        r = 1.5
        if 1 <= h < 3.5:
            r += 150
        if 4 <= h < 4.75:
            r += 100
        rows.append((m * 60, max(0.0, r * (1 + rng.gauss(0, 0.02)))))
    return rows


write("diurnal-chat.csv", diurnal())
write("launch-day.csv", launch())
write("batch-embedding.csv", batch())
