// Spec output for people, plus mocha's own pass/fail counts appended as one JSON line to
// $EDMS_TEST_COUNTS, so .ci/run can print a total that a run which tested nothing cannot fake.
// At the end it prints where the time went: each file's wall time and the slowest hooks, so that a change
// which makes the suite slower shows in the CI log. Not under mocha's parallel mode (the unit tier's): there a
// file's events are replayed once it is done, without its file, so nothing of their timing is printed.
const fs = require("fs");
const path = require("path");
const Mocha = require("mocha");
const { EVENT_RUN_END, EVENT_SUITE_BEGIN, EVENT_SUITE_END, EVENT_HOOK_BEGIN, EVENT_HOOK_END } =
  Mocha.Runner.constants;

class CountReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const started = new Map();
    const files = [];
    const hooks = [];
    runner.on(EVENT_SUITE_BEGIN, (suite) => started.set(suite, Date.now()));
    runner.on(EVENT_SUITE_END, (suite) => {
      if (suite.file && suite.parent && suite.parent.root) {
        files.push([
          `${path.relative(process.cwd(), suite.file)}: ${suite.title}`,
          Date.now() - started.get(suite),
        ]);
      }
    });
    runner.on(EVENT_HOOK_BEGIN, (hook) => started.set(hook, Date.now()));
    runner.on(EVENT_HOOK_END, (hook) => {
      const ms = Date.now() - started.get(hook);
      if (ms >= 20_000) {
        hooks.push([
          `${hook.parent.fullTitle()}: ${hook.title.replace(/^"(.*)" hook.*$/, "$1")}`,
          ms,
        ]);
      }
    });
    runner.once(EVENT_RUN_END, () => {
      const s = (ms) => `${Math.round(ms / 1000)} s`.padStart(7);
      if (files.length > 1) {
        console.log("  wall time by describe (the slowest 15):");
        for (const [name, ms] of files.sort((a, b) => b[1] - a[1]).slice(0, 15)) {
          console.log(`  ${s(ms)}  ${name}`);
        }
      }
      if (hooks.length) {
        console.log("  hooks over 20 s:");
        for (const [name, ms] of hooks.sort((a, b) => b[1] - a[1]))
          console.log(`  ${s(ms)}  ${name}`);
      }
      const file = process.env.EDMS_TEST_COUNTS;
      if (file) {
        const { passes, failures, pending } = runner.stats;
        fs.appendFileSync(
          file,
          JSON.stringify({ passed: passes, failed: failures, skipped: pending }) + "\n",
        );
      }
    });
  }
}
module.exports = CountReporter;
