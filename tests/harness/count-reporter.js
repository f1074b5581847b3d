// Spec output for people, plus mocha's own pass/fail counts appended as one JSON line to
// $EDMS_TEST_COUNTS, so .ci/run can print a total that a run which tested nothing cannot fake.
const fs = require("fs");
const Mocha = require("mocha");

class CountReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
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
