/**
 * Start-up cost of edms-ops as operators and deploy hooks pay it: `node ops/bin/edms-ops.js --help`, wall
 * time and peak RSS (GNU time's %M), median of 5 runs after one warm-up. Targets (issue 11): ≤ 0.3 s and
 * ≤ 70 MiB. Reported, not asserted: timing assertions flake on a loaded machine.
 *
 *   npm run bench:cli        (also printed first by `npm run bench`)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ensureCliBuilt } from "../harness/build";

const REPO_ROOT = path.resolve(__dirname, "../..");
const GNU_TIME = "/usr/bin/time";
const RUNS = 5;

export interface StartupFigures {
  readonly seconds: number;
  readonly mib: number;
  readonly runs: number;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export function measureCliStartup(runs = RUNS): StartupFigures {
  if (!fs.existsSync(GNU_TIME)) {
    throw new Error(
      `${GNU_TIME} is missing: install GNU time (apt-get install time) to measure peak RSS.`,
    );
  }
  ensureCliBuilt();
  const bin = path.join(REPO_ROOT, "ops/bin/edms-ops.js");
  const seconds: number[] = [];
  const kib: number[] = [];
  for (let i = 0; i <= runs; i += 1) {
    const started = process.hrtime.bigint();
    const result = spawnSync(GNU_TIME, ["-f", "%M", process.execPath, bin, "--help"], {
      encoding: "utf8",
    });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    if (result.status !== 0 || !result.stdout.includes("Usage: edms-ops")) {
      throw new Error(`edms-ops --help failed (exit ${result.status}): ${result.stderr}`);
    }
    if (i === 0) {
      continue; // warm-up: page cache
    }
    seconds.push(elapsed);
    kib.push(Number(result.stderr.trim().split("\n").pop()));
  }
  return { seconds: median(seconds), mib: median(kib) / 1024, runs };
}

export function printCliStartup(figures: StartupFigures): void {
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  console.log(
    `edms-ops --help (median of ${figures.runs}): ${figures.seconds.toFixed(3)} s, ${figures.mib.toFixed(1)} MiB peak RSS` +
      ` — targets ≤ 0.3 s ${verdict(figures.seconds <= 0.3)}, ≤ 70 MiB ${verdict(figures.mib <= 70)}`,
  );
}

if (require.main === module) {
  printCliStartup(measureCliStartup());
}
