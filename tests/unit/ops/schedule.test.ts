import { expect } from "chai";
import { lastDue, nextDue, scheduleProblem } from "../../../model/schedule";
import {
  catchUpDue,
  describeSchedule,
  missedGraceMs,
  parseScheduleRecords,
  ScheduleRecord,
  scheduleState,
} from "../../../ops/schedule/records";
import { scheduleRun } from "../../harness/records";

const at = (iso: string) => new Date(iso);
const start = (iso: string, schedule = "0 */6 * * *"): ScheduleRecord => ({
  kind: "start",
  schedule,
  at: iso,
  next: null,
});
const run = scheduleRun;

describe("backup schedule (UTC)", function () {
  it("computes due times in UTC, seconds included, and says why a value is no schedule", function () {
    expect(nextDue("0 */6 * * *", at("2026-11-27T18:00:05Z"))?.toISOString()).to.equal(
      "2026-11-28T00:00:00.000Z",
    );
    expect(nextDue("*/20 * * * * *", at("2026-11-27T18:00:05Z"))?.toISOString()).to.equal(
      "2026-11-27T18:00:20.000Z",
    );
    // A due time itself is the last due at that instant, not the one before.
    expect(lastDue("0 */6 * * *", at("2026-11-27T18:00:00Z"))?.toISOString()).to.equal(
      "2026-11-27T18:00:00.000Z",
    );
    expect(lastDue("@daily", at("2026-11-27T17:59:59Z"))?.toISOString()).to.equal(
      "2026-11-27T00:00:00.000Z",
    );
    expect(nextDue("off", at("2026-11-27T18:00:00Z"))).to.equal(null);
    expect(scheduleProblem("off")).to.equal(null);
    expect(scheduleProblem("* * 31 2 *")).to.match(/never fires|not a cron expression/);
  });

  it("ignores a torn last line and foreign lines", function () {
    const text = `${JSON.stringify(start("2026-11-27T10:00:00Z"))}\n{"kind":"ru\n[1]\n${JSON.stringify(run("2026-11-27T12:00:00Z"))}\n`;
    expect(parseScheduleRecords(text).map((r) => r.kind)).to.deep.equal(["start", "run"]);
  });
});

describe("catch-up after the scheduler was down", function () {
  const schedule = "0 */6 * * *";
  it("runs nothing on the very first start: no schedule existed before it", function () {
    expect(catchUpDue(schedule, [], at("2026-11-27T13:00:00Z"))).to.equal(null);
  });

  it("runs the last due once when it passed after the last attempt and the last start", function () {
    const records = [start("2026-11-27T05:00:00Z"), run("2026-11-27T06:00:00Z")];
    // Down from 07:00 to 19:30: 12:00 and 18:00 were missed, one catch-up for 18:00.
    expect(catchUpDue(schedule, records, at("2026-11-27T19:30:00Z"))?.toISOString()).to.equal(
      "2026-11-27T18:00:00.000Z",
    );
  });

  it("runs nothing when the last due was attempted (even if it failed) or came before the last start", function () {
    expect(
      catchUpDue(
        schedule,
        [start("2026-11-27T05:00:00Z"), run("2026-11-27T12:00:00Z", "failed")],
        at("2026-11-27T17:59:00Z"),
      ),
    ).to.equal(null);
    expect(
      catchUpDue(
        schedule,
        [start("2026-11-27T05:00:00Z"), run("2026-11-27T06:00:00Z"), start("2026-11-27T13:00:00Z")],
        at("2026-11-27T17:00:00Z"),
      ),
    ).to.equal(null);
  });
});

describe("schedule state for status and health", function () {
  const schedule = "0 */6 * * *";
  it("is quiet when the last due ran fine, and names the next due and the last good run", function () {
    const state = scheduleState(
      schedule,
      [start("2026-11-27T05:00:00Z"), run("2026-11-27T06:00:00Z"), run("2026-11-27T12:00:00Z")],
      at("2026-11-27T13:00:00Z"),
    );
    expect(state).to.deep.include({
      enabled: true,
      nextDue: "2026-11-27T18:00:00.000Z",
      missed: null,
      problem: null,
    });
    expect(state.lastOk?.due).to.equal("2026-11-27T12:00:00Z");
  });

  it("reports a failed last run with its error, and a skipped one as skipped", function () {
    const failed = scheduleState(
      schedule,
      [run("2026-11-27T06:00:00Z"), run("2026-11-27T12:00:00Z", "failed")],
      at("2026-11-27T13:00:00Z"),
    );
    expect(failed.problem).to.equal(
      "the last scheduled backup (due 2026-11-27T12:00:00Z) FAILED: postgres is not running",
    );
    expect(failed.lastOk?.due).to.equal("2026-11-27T06:00:00Z");
    const skipped = scheduleState(
      schedule,
      [run("2026-11-27T12:00:00Z", "skipped", { error: "Stack s is busy" })],
      at("2026-11-27T13:00:00Z"),
    );
    expect(skipped.problem).to.match(/was skipped: Stack s is busy/);
    // A failed run followed by a due nobody attempted: both are said.
    const both = scheduleState(
      schedule,
      [run("2026-11-27T06:00:00Z"), run("2026-11-27T12:00:00Z", "failed")],
      at("2026-11-27T18:30:00Z"),
    );
    expect(both.problem).to.equal(
      "the backup due 2026-11-27T18:00:00.000Z was not attempted (scheduler stopped or host down?); " +
        "the last scheduled backup (due 2026-11-27T12:00:00Z) FAILED: postgres is not running",
    );
  });

  it("reports a due with no attempt as missed once the grace time is over, not while a run holds the lock", function () {
    const records = [start("2026-11-27T05:00:00Z"), run("2026-11-27T06:00:00Z")];
    expect(missedGraceMs(schedule, at("2026-11-27T12:00:00Z"))).to.equal(15 * 60_000);
    expect(scheduleState(schedule, records, at("2026-11-27T12:10:00Z")).missed).to.equal(null);
    const late = scheduleState(schedule, records, at("2026-11-27T12:16:00Z"));
    expect(late.missed).to.equal("2026-11-27T12:00:00.000Z");
    expect(late.problem).to.match(/due 2026-11-27T12:00:00.000Z was not attempted/);
    expect(scheduleState(schedule, records, at("2026-11-27T12:16:00Z"), true).missed).to.equal(
      null,
    );
    // A short test schedule: one period, but at least a minute.
    expect(missedGraceMs("*/20 * * * * *", at("2026-11-27T12:00:00Z"))).to.equal(60_000);
  });

  it("has nothing due, next or missed when off", function () {
    expect(scheduleState("off", [], at("2026-11-27T12:16:00Z"))).to.deep.include({
      enabled: false,
      nextDue: null,
      missed: null,
      problem: null,
    });
  });
});

describe("the schedule line of status and health", function () {
  it("names the schedule, the scheduler, the last run and the next due; a problem is marked", function () {
    const state = scheduleState(
      "0 */6 * * *",
      [run("2026-11-27T06:00:00Z"), run("2026-11-27T12:00:00Z", "failed")],
      at("2026-11-27T13:00:00Z"),
    );
    expect(describeSchedule({ ...state, scheduler: "running" })).to.equal(
      "scheduled backups `0 */6 * * *` (UTC), scheduler running: last run due 2026-11-27T12:00:00Z: failed; " +
        "next 2026-11-27T18:00:00.000Z; ATTENTION: the last scheduled backup (due 2026-11-27T12:00:00Z) FAILED: postgres is not running",
    );
    const off = scheduleState("off", [], at("2026-11-27T13:00:00Z"));
    expect(describeSchedule({ ...off, scheduler: null })).to.equal(
      "scheduled backups: off (`edms:backup.schedule`)",
    );
  });
});
