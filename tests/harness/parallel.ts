/**
 * The Docker tiers (tests/e2e and tests/faults) as one run on two lanes: each test file is its own mocha
 * process, and a free lane takes the longest file still waiting. Most of a file's time is waiting on
 * containers (health checks, restic, gunicorn starts), which a single lane left a quarter of the CPU idle
 * for; two lanes saturate both cores, and each file then takes ~1.5× its time alone.
 *
 * Every file is taken from the tiers' folders (a new one runs without being listed here); WEIGHTS, its wall
 * time in seconds on the slower CI machine, only orders them. Each file gets its own published-port range
 * (EDMS_TEST_PORT_BASE) and stack names are already per file, so two files never share a container, volume,
 * network or port. The CLI is built and the engine prepared once, before the lanes start
 * (EDMS_TEST_PREPARED tells the files' hooks). Output is printed as it comes, each line prefixed with its
 * file; each file appends its own counts to $EDMS_TEST_COUNTS. Exits non-zero when any file failed.
 *
 *   node -r ts-node/register/transpile-only tests/harness/parallel.ts [--lanes N] [tier-or-file ...]
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ensureCliBuilt } from "./build";
import { prepareEngine } from "./stack";

const ROOT = path.resolve(__dirname, "../..");
/** The Docker tiers: folders under tests/ whose own .mocharc.json each file's process runs with. */
const TIERS = ["e2e", "faults"];
/**
 * Each file runs with its tier's .mocharc.json (requires, reporter, slow) but twice its timeout: beside
 * another file a test takes ~1.5–1.7× its time alone (the restore-kill scenario 410 s alone, over 600 s
 * beside tests/e2e/reset.test.ts). A timeout here only ends a hung test; no speed is asserted.
 */
function mochaArgs(tier: string): string[] {
  const rc = JSON.parse(
    fs.readFileSync(path.join(ROOT, "tests", tier, ".mocharc.json"), "utf8"),
  ) as { require: string[]; timeout: number; slow: number; reporter: string };
  return [
    "--no-config",
    ...rc.require.flatMap((module) => ["-r", module]),
    ...["--timeout", String(rc.timeout * 2), "--slow", String(rc.slow)],
    ...["--reporter", rc.reporter],
  ];
}
/** Seconds each file took on two lanes in the CI rehearsal of 4e75617; only the order of the queue depends on them. */
const WEIGHTS: Record<string, number> = {
  "tests/e2e/externalStack.test.ts": 1143,
  "tests/faults/interruptions.test.ts": 1123,
  "tests/faults/backup.test.ts": 742,
  "tests/e2e/production.test.ts": 635,
  "tests/e2e/reset.test.ts": 628,
  "tests/e2e/proxy.test.ts": 550,
  "tests/e2e/deploy.test.ts": 474,
  "tests/e2e/rollback.test.ts": 306,
  "tests/faults/disaster.test.ts": 281,
  "tests/e2e/drill.test.ts": 280,
  "tests/e2e/schedule.test.ts": 255,
  "tests/e2e/alerts.test.ts": 187,
  "tests/e2e/export.test.ts": 74,
  "tests/e2e/externalDb.test.ts": 57,
  "tests/e2e/digest.test.ts": 47,
  "tests/e2e/engineApi.test.ts": 19,
};
const DEFAULT_WEIGHT = 300;
const PORTS_PER_FILE = 40;

interface Job {
  file: string;
  tier: string;
}

function jobsOf(targets: string[]): Job[] {
  const jobs: Job[] = [];
  for (const target of targets.length ? targets : TIERS) {
    if (TIERS.includes(target)) {
      const dir = path.join("tests", target);
      for (const name of fs.readdirSync(path.join(ROOT, dir)).sort()) {
        if (name.endsWith(".test.ts")) {
          jobs.push({ file: path.join(dir, name), tier: target });
        }
      }
    } else {
      const tier = path.basename(path.dirname(target));
      if (!TIERS.includes(tier) || !fs.existsSync(path.join(ROOT, target))) {
        throw new Error(`${target}: not a tier (${TIERS.join(", ")}) nor one of their test files`);
      }
      jobs.push({ file: path.normalize(target), tier });
    }
  }
  const weight = (job: Job) => WEIGHTS[job.file] ?? DEFAULT_WEIGHT;
  // A file named beside its tier (`… test:docker -- e2e tests/e2e/drill.test.ts`) runs once: twice at once,
  // its two processes would share its stack names.
  const once = jobs.filter((job, i) => jobs.findIndex((other) => other.file === job.file) === i);
  return once.sort((a, b) => weight(b) - weight(a));
}

/** The most lines of a file's failures repeated after all lanes are done. */
const FAILURE_LINES = 150;

/**
 * Copies a stream to ours line by line, each line prefixed (a partial line waits for its end). From
 * mocha's "N failing" on, the lines are also kept in `failures`: repeated at the end of the run, where a
 * CI log cut to its tail still shows why a file that ended long before failed.
 */
function prefixed(
  stream: NodeJS.ReadableStream,
  out: NodeJS.WriteStream,
  prefix: string,
  failures?: string[],
): void {
  let pending = "";
  let failing = false;
  const write = (line: string) => {
    out.write(`${prefix}${line}\n`);
    failing ||= /^\s*\d+ failing$/.test(line);
    if (failures && failing && failures.length < FAILURE_LINES) {
      failures.push(`${prefix}${line}`);
    }
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() as string;
    lines.forEach(write);
  });
  stream.on("end", () => pending && write(pending));
}

function runFile(
  job: Job,
  portBase: number,
  failures: string[],
): Promise<{ code: number; seconds: number }> {
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [require.resolve("mocha/bin/mocha.js"), ...mochaArgs(job.tier), job.file],
    {
      cwd: ROOT,
      env: { ...process.env, EDMS_TEST_PREPARED: "1", EDMS_TEST_PORT_BASE: String(portBase) },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const prefix = `[${path.basename(job.file, ".test.ts")}] `;
  prefixed(child.stdout, process.stdout, prefix, failures);
  prefixed(child.stderr, process.stderr, prefix);
  return new Promise((resolve) => {
    child.on("close", (code, signal) =>
      resolve({ code: code ?? (signal ? 1 : 0), seconds: (Date.now() - started) / 1000 }),
    );
  });
}

async function main(argv: string[]): Promise<number> {
  let lanes = 2;
  const targets: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--lanes") {
      lanes = Number(argv[(i += 1)]);
      if (!Number.isInteger(lanes) || lanes < 1) {
        throw new Error("--lanes: give a whole number of at least 1");
      }
    } else {
      targets.push(argv[i]);
    }
  }
  const queue = jobsOf(targets);
  ensureCliBuilt();
  prepareEngine();
  const started = Date.now();
  const results: string[] = [];
  const failures: string[] = [];
  let failed = 0;
  let next = 0;
  async function lane(): Promise<void> {
    while (next < queue.length) {
      const index = next++;
      const job = queue[index];
      const failing: string[] = [];
      const { code, seconds } = await runFile(job, 18100 + index * PORTS_PER_FILE, failing);
      failed += code === 0 ? 0 : 1;
      if (code !== 0) {
        failures.push(
          ...(failing.length ? failing : [`[${job.file}] exit ${code}, no mocha failures printed`]),
        );
      }
      results.push(
        `${String(Math.round(seconds)).padStart(6)} s  ${job.file}${code ? "  FAILED" : ""}`,
      );
    }
  }
  await Promise.all(Array.from({ length: Math.min(lanes, queue.length) }, lane));
  if (failures.length) {
    console.log(
      `\n  the failures again (at most ${FAILURE_LINES} lines a file):\n${failures.join("\n")}`,
    );
  }
  console.log(
    `\n  ${queue.length} files on ${lanes} lanes in ${Math.round((Date.now() - started) / 1000)} s:`,
  );
  console.log(results.map((line) => `  ${line}`).join("\n"));
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(`parallel: ${error.message}`);
    process.exit(2);
  },
);
