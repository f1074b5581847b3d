import { expect } from "chai";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { Settings, validateSettings } from "../../../model/settings";
import {
  decide,
  emptyAlertState,
  REMINDER_MS,
  renderText,
  undelivered,
} from "../../../ops/alerts/decide";
import { alertTempName, newerState, withDeadline } from "../../../ops/alerts/check";
import {
  AlertInputs,
  assess,
  Condition,
  CONDITIONS,
  evaluate,
  evaluatedKeys,
} from "../../../ops/alerts/evaluate";
import { describeTargets, readTargets, scrub, sendAlert } from "../../../ops/alerts/send";
import { scheduleState, ScheduleRecord } from "../../../ops/schedule/records";
import type { AlertMessage, AlertState, DrillRecord } from "../../../ops/store/records";
import { scheduleRun } from "../../harness/records";
import type { ScheduleRun } from "../../../ops/schedule/records";

const settings: Settings = {
  ...validateSettings("prod", {
    environment: "production",
    version: "2.0.0",
    tlsUpstream: true,
    django: { allowedHosts: ["edms.example.com"] },
    backup: { offsite: { repository: { secure: "v1:x" } } },
    alerts: { webhook: { secure: "v1:y" }, offsiteLagBackups: 2, offsiteLagHours: 12 },
  }),
};
const NOW = new Date("2026-11-27T12:10:00Z");
const hoursBefore = (h: number, from = NOW) => new Date(from.getTime() - h * 3_600_000);
const run = (due: string, outcome: ScheduleRun["outcome"], extra: Partial<ScheduleRun> = {}) =>
  scheduleRun(due, outcome, {
    ok: outcome === "ok",
    error: outcome === "ok" ? null : "pg_dump: connection to server failed: postgres is down",
    ...extra,
  });
const start: ScheduleRecord = {
  kind: "start",
  schedule: "0 */6 * * *",
  at: "2026-11-20T00:00:00Z",
  next: null,
};

function inputs(records: ScheduleRecord[], extra: Partial<AlertInputs> = {}): AlertInputs {
  const newest = { id: "b-new", time: hoursBefore(1).toISOString() };
  return {
    schedule: scheduleState("0 */6 * * *", records, NOW),
    firstStart: "2026-11-20T00:00:00Z",
    local: [newest],
    offsite: { repository: "s3:…", reachable: true, count: 1, newest: "b-new", missing: [] },
    drill: null,
    restore: null,
    freshness: { newestGood: newest.id, time: newest.time, ageHours: 1, failedDrills: [] },
    ...extra,
  };
}
const healthy = () => inputs([start, run("2026-11-27T12:00:00Z", "ok")]);
const keys = (c: Condition[]) => c.map((x) => x.key);

describe("alerts: what is wrong (evaluate)", function () {
  it("raises nothing when the last run took a backup and everything is fresh", function () {
    expect(evaluate(settings, healthy(), NOW)).to.deep.equal([]);
  });

  it("a failed, a skipped and a caught-up run each raise their condition with the next command", function () {
    const failed = evaluate(settings, inputs([start, run("2026-11-27T12:00:00Z", "failed")]), NOW);
    expect(keys(failed)).to.deep.equal(["backup-failed"]);
    expect(failed[0].detail).to.contain("postgres is down");
    expect(failed[0].next).to.equal(
      "edms-ops health --stack prod, then take one by hand: edms-ops backup --stack prod",
    );
    const skipped = evaluate(
      settings,
      inputs([start, run("2026-11-27T12:00:00Z", "skipped")]),
      NOW,
    );
    expect(keys(skipped)).to.deep.equal(["backup-skipped"]);
    const caughtUp = evaluate(
      settings,
      inputs([start, run("2026-11-27T12:00:00Z", "ok", { catchUp: true })]),
      NOW,
    );
    expect(keys(caughtUp)).to.deep.equal(["backup-missed"]);
  });

  it("a due nobody attempted counts as missed once its grace time is over", function () {
    const late = new Date("2026-11-27T12:30:00Z");
    const state = inputs([start, run("2026-11-27T06:00:00Z", "ok")]);
    const missed = evaluate(
      settings,
      {
        ...state,
        schedule: scheduleState("0 */6 * * *", [start, run("2026-11-27T06:00:00Z", "ok")], late),
      },
      late,
    );
    expect(keys(missed)).to.include("backup-missed");
  });

  it("the off-host copy lags: more backups than allowed, or the oldest missing too old, or unreachable", function () {
    const local = [0, 1, 2].map((i) => ({ id: `b${i}`, time: hoursBefore(3 - i).toISOString() }));
    const lag = (missing: string[]) => ({
      repository: "s3:…",
      reachable: true,
      count: 0,
      newest: null,
      missing,
    });
    expect(
      keys(evaluate(settings, { ...healthy(), local, offsite: lag(["b1", "b2"]) }, NOW)),
    ).to.deep.equal([]);
    const many = evaluate(settings, { ...healthy(), local, offsite: lag(["b0", "b1", "b2"]) }, NOW);
    expect(keys(many)).to.deep.equal(["offsite-lag"]);
    expect(many[0].next).to.equal("edms-ops backups list --offsite --stack prod");
    const old = [{ id: "old", time: hoursBefore(13).toISOString() }];
    expect(
      keys(evaluate(settings, { ...healthy(), local: old, offsite: lag(["old"]) }, NOW)),
    ).to.deep.equal(["offsite-lag"]);
    const down = {
      repository: "s3:…",
      reachable: false,
      problem: "the off-host repository is unreachable: timeout",
    };
    expect(keys(evaluate(settings, { ...healthy(), offsite: down }, NOW))).to.deep.equal([
      "offsite-lag",
    ]);
  });

  it("a failed latest drill, an unfinished restore and a stale newest good backup each raise one", function () {
    const drill = {
      id: "d1",
      backup: "b-new",
      ok: false,
      trigger: "pre-deploy",
      finishedAt: NOW.toISOString(),
      checks: [{ name: "migrations", ok: false, detail: "0042 missing", seconds: 1 }],
    } as unknown as DrillRecord;
    const stale = {
      newestGood: "b-old",
      time: hoursBefore(13).toISOString(),
      ageHours: 13,
      failedDrills: [],
    };
    const all = evaluate(
      settings,
      { ...healthy(), drill, restore: { id: "b-old", undo: "b-undo" }, freshness: stale },
      NOW,
    );
    expect(keys(all)).to.deep.equal(["drill-failed", "restore-incomplete", "rpo-exceeded"]);
    expect(all[0].detail).to.contain("migrations: 0042 missing");
    expect(all[1].next).to.equal("edms-ops restore b-old --stack prod --confirm production");
    expect(all[2].summary).to.contain("(12h)");
    // Within the objective, and with the objective off, nothing.
    const fresh = { ...stale, time: hoursBefore(11).toISOString() };
    expect(keys(evaluate(settings, { ...healthy(), freshness: fresh }, NOW))).to.deep.equal([]);
    const off = { ...settings, backup: { ...settings.backup, rpo: "off" } };
    expect(keys(evaluate(off, { ...healthy(), freshness: stale }, NOW))).to.deep.equal([]);
  });

  it("a drill the host stopped (a full disk) is still raised, but not as a backup that did not restore", function () {
    const checks = [
      {
        name: "database restore",
        ok: false,
        detail: "stopped on the host, not on the backup: No space left on device",
        seconds: 1,
        host: true,
      },
      { name: "row counts", ok: false, detail: "not run: database did not restore", seconds: 0 },
    ];
    const drill = {
      id: "d2",
      backup: "b-new",
      ok: false,
      trigger: "scheduled",
      finishedAt: NOW.toISOString(),
      checks,
    } as unknown as DrillRecord;
    const [onHost] = evaluate(settings, { ...healthy(), drill }, NOW);
    expect(onHost.key).to.equal("drill-failed");
    expect(onHost.summary)
      .to.contain("could not finish: the host failed")
      .and.not.contain("did not restore");
    expect(onHost.detail).to.contain("No space left on device");
    // One check that found the backup at fault beside it: the backup's failure again.
    const mixed = {
      ...drill,
      checks: [
        ...checks,
        { name: "media checksums", ok: false, detail: "3 files differ", seconds: 1 },
      ],
    };
    expect(evaluate(settings, { ...healthy(), drill: mixed }, NOW)[0].summary).to.contain(
      "did not restore cleanly",
    );
  });

  it("raises nothing on what it could not read", function () {
    const unknown: AlertInputs = {
      schedule: null,
      firstStart: null,
      local: null,
      offsite: null,
      drill: null,
      restore: null,
      freshness: null,
    };
    expect(evaluate(settings, unknown, NOW)).to.deep.equal([]);
  });
});

describe("alerts: when to tell a person (decide)", function () {
  const failing: Condition = {
    key: "backup-failed",
    summary: "the scheduled backup of prod failed",
    detail: "due x: boom",
    next: "edms-ops health --stack prod",
  };
  const stale: Condition = {
    key: "rpo-exceeded",
    summary: "too old",
    detail: "13 h",
    next: "edms-ops backups list --stack prod",
  };
  const at = (ms: number) => new Date(NOW.getTime() + ms);

  it("fires once when a condition starts, with the stack, what failed, the next command and the time", function () {
    const { messages, state } = decide(settings, emptyAlertState(), [failing], NOW);
    expect(messages).to.deep.equal([
      {
        stack: "prod",
        environment: "production",
        condition: "backup-failed",
        state: "firing",
        summary: failing.summary,
        detail: failing.detail,
        next: failing.next,
        at: NOW.toISOString(),
      },
    ]);
    expect(state.active["backup-failed"]).to.deep.include({
      since: NOW.toISOString(),
      lastSent: NOW.toISOString(),
    });
    const text = renderText(messages[0]);
    expect(text.title).to.equal("[edms prod] ALERT: the scheduled backup of prod failed");
    expect(text.body).to.contain("Next: edms-ops health --stack prod");
    // Names from outside (a media file, a database value) quoted in a summary or detail: one title line,
    // and no control character reaches the receiver.
    const hostile = renderText({
      ...messages[0],
      summary: "drill failed: a\nok: all good\u001b[2J",
      detail: "file \u001b]0;x\u0007b\r.pdf: not restored\nsecond line\ttab",
    });
    expect(hostile.title).to.equal("[edms prod] ALERT: drill failed: a ok: all good?[2J");
    expect(hostile.body).to.contain("file ?]0;x?b?.pdf: not restored\nsecond line\ttab");
  });

  it("says nothing while it holds, reminds after 24 h (not before), and says resolved when it clears", function () {
    const first = decide(settings, emptyAlertState(), [failing], NOW);
    const soon = decide(settings, first.state, [failing], at(REMINDER_MS - 1000));
    expect(soon.messages).to.deep.equal([]);
    expect(soon.state.active).to.deep.equal(first.state.active);
    const day = decide(settings, soon.state, [failing], at(REMINDER_MS));
    expect(day.messages.map((m) => m.state)).to.deep.equal(["reminder"]);
    expect(day.messages[0].detail).to.contain(`(since ${NOW.toISOString()})`);
    const nextDay = decide(settings, day.state, [failing], at(REMINDER_MS + 3_600_000));
    expect(nextDay.messages).to.deep.equal([]);
    // Clear at one check is not yet resolved (damping): at two in a row it is.
    const once = decide(settings, nextDay.state, [], at(REMINDER_MS + 7_200_000 - 300_000));
    expect(once.messages).to.deep.equal([]);
    const cleared = decide(settings, once.state, [], at(REMINDER_MS + 7_200_000));
    expect(cleared.messages.map((m) => [m.state, m.condition])).to.deep.equal([
      ["resolved", "backup-failed"],
    ]);
    expect(cleared.state.active).to.deep.equal({});
    expect(decide(settings, cleared.state, [], at(REMINDER_MS * 2)).messages).to.deep.equal([]);
  });

  it("handles several conditions at once, each on its own", function () {
    const both = decide(settings, emptyAlertState(), [failing, stale], NOW);
    expect(both.messages.map((m) => `${m.state} ${m.condition}`)).to.deep.equal([
      "firing backup-failed",
      "firing rpo-exceeded",
    ]);
    const clearOnce = decide(settings, both.state, [stale], at(60_000));
    expect(clearOnce.messages).to.deep.equal([]);
    const one = decide(settings, clearOnce.state, [stale], at(120_000));
    expect(one.messages.map((m) => `${m.state} ${m.condition}`)).to.deep.equal([
      "resolved backup-failed",
    ]);
    expect(Object.keys(one.state.active)).to.deep.equal(["rpo-exceeded"]);
  });

  it("never storms: 100 checks five minutes apart of a failure that holds send one alert and one reminder", function () {
    let state: AlertState = emptyAlertState();
    const sent: AlertMessage[] = [];
    for (let i = 0; i < 100 * 3; i += 1) {
      const d = decide(settings, state, [failing], at(i * 5 * 60_000));
      sent.push(...d.messages);
      state = d.state;
    }
    // 300 checks × 5 min = 25 h: the alert, then one reminder a day later.
    expect(sent.map((m) => m.state)).to.deep.equal(["firing", "reminder"]);
  });

  it("a message no target received is sent again at the next check", function () {
    const first = decide(settings, emptyAlertState(), [failing], NOW);
    const kept = undelivered(emptyAlertState(), first.state, first.messages);
    expect(kept.active).to.deep.equal({});
    expect(
      decide(settings, kept, [failing], at(300_000)).messages.map((m) => m.state),
    ).to.deep.equal(["firing"]);
    const clearOnce = decide(settings, first.state, [], at(300_000));
    const cleared = decide(settings, clearOnce.state, [], at(600_000));
    expect(cleared.messages.map((m) => m.state)).to.deep.equal(["resolved"]);
    const stillOpen = undelivered(first.state, cleared.state, cleared.messages);
    expect(Object.keys(stillOpen.active)).to.deep.equal(["backup-failed"]);
  });
});

describe("alerts: targets and what leaves the host", function () {
  const TOKEN = "tok3n-S3cr3t-91c2";
  let dir: string;
  let server: http.Server;
  let bodies: string[];
  let url: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-alerts-"));
    bodies = [];
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        bodies.push(`${req.url} ${body}`);
        res.writeHead(req.url?.includes(TOKEN) ? 204 : 404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/${TOKEN}?key=${TOKEN}`;
  });
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const files = (apprise: string[], webhook: string | null) => {
    fs.writeFileSync(path.join(dir, "apprise.txt"), apprise.join("\n") + "\n");
    fs.writeFileSync(path.join(dir, "webhook"), webhook ? `${webhook}\n` : "");
    return readTargets({
      apprise: path.join(dir, "apprise.txt"),
      webhook: path.join(dir, "webhook"),
    });
  };

  it("are shown redacted: scheme and host, never user, password, port, path or query", function () {
    const targets = files(
      [
        `slack://T1/${TOKEN}/C3`,
        `mailto://ops:${TOKEN}@mail.example.com`,
        `ntfy://ntfy.sh/${TOKEN}`,
        `tgram://123456:${TOKEN}/99`,
      ],
      `https://hooks.example.com:8443/services/${TOKEN}?sig=${TOKEN}`,
    );
    expect(describeTargets(targets)).to.deep.equal([
      "apprise slack://…",
      "apprise mailto://mail.example.com/…",
      "apprise ntfy://ntfy.sh/…",
      "apprise tgram://…",
      "webhook https://hooks.example.com/…",
    ]);
  });

  it("the webhook gets the message as JSON; nothing sent or recorded holds the token", async function () {
    const targets = files([`json://127.0.0.1:1/${TOKEN}`], url);
    const message = decide(
      settings,
      emptyAlertState(),
      [{ key: "backup-failed", summary: "s", detail: "d", next: "n" }],
      NOW,
    ).messages[0];
    const deliveries = await sendAlert(targets, message);
    const webhook = deliveries.find((d) => d.target.startsWith("webhook"))!;
    expect(webhook).to.deep.equal({ target: "webhook http://127.0.0.1/…", ok: true, error: null });
    expect(bodies).to.have.length(1);
    expect(JSON.parse(bodies[0].slice(bodies[0].indexOf(" ") + 1))).to.deep.equal(message);
    expect(bodies[0].slice(bodies[0].indexOf(" "))).not.to.contain(TOKEN);
    // Apprise is not installed here (or cannot reach port 1): a failure, recorded without the URL.
    const apprise = deliveries.find((d) => d.target.startsWith("apprise"))!;
    expect(apprise.ok).to.equal(false);
    expect(JSON.stringify(deliveries)).not.to.contain(TOKEN);
    expect(JSON.stringify(message)).not.to.contain(TOKEN);
  });

  it("a webhook that refuses, or is unreachable, is a failed delivery whose error names no part of the URL", async function () {
    const wrong = `http://127.0.0.1:${(server.address() as AddressInfo).port}/wrong/${TOKEN}x`;
    const message = {
      ...decide(
        settings,
        emptyAlertState(),
        [{ key: "rpo-exceeded", summary: "s", detail: "d", next: "n" }],
        NOW,
      ).messages[0],
    };
    const [refused] = await sendAlert(files([], wrong.replace(`${TOKEN}x`, "other")), message);
    expect(refused).to.deep.include({ ok: false, error: "HTTP 404" });
    const [unreachable] = await sendAlert(files([], `http://127.0.0.1:1/${TOKEN}`), message);
    expect(unreachable.ok).to.equal(false);
    expect(unreachable.error).not.to.contain(TOKEN);
  });

  it("scrub removes every piece of a secret URL from error text", function () {
    const secret = `https://user:${TOKEN}@hooks.example.com/a/${TOKEN}?k=${TOKEN}`;
    const text = `POST ${secret} failed; token ${TOKEN}; user user`;
    expect(scrub(text, [secret])).not.to.contain(TOKEN);
    expect(scrub(text, [secret])).not.to.contain("hooks.example.com/a");
  });
});

describe("alerts: unread inputs, flapping, lost writes, slow checks", function () {
  const failing = (key: Condition["key"]): Condition => ({
    key,
    summary: `${key} holds`,
    detail: "x",
    next: "edms-ops status --stack prod",
  });
  const at = (ms: number) => new Date(NOW.getTime() + ms);
  const FIVE = 5 * 60_000;

  it("an input that cannot be read is not evaluated, and its open alert neither resolves nor fires again", function () {
    const unread: AlertInputs = {
      ...healthy(),
      schedule: null,
      offsite: null,
      freshness: null,
      unread: ["drill", "restore"],
    };
    expect([...evaluatedKeys(settings, unread)]).to.deep.equal([]);
    expect([...evaluatedKeys(settings, healthy())].sort()).to.deep.equal([...CONDITIONS].sort());
    const open = decide(settings, emptyAlertState(), [failing("backup-failed")], NOW).state;
    let state = open;
    for (let i = 1; i <= 5; i += 1) {
      const { conditions, evaluated } = assess(settings, unread, at(i * FIVE));
      const d = decide(settings, state, conditions, at(i * FIVE), evaluated);
      expect(d.messages).to.deep.equal([]);
      state = d.state;
    }
    expect(Object.keys(state.active)).to.deep.equal(["backup-failed"]);
    // Readable again and still failing: nothing new to say.
    const failed = inputs([start, run("2026-11-27T12:00:00Z", "failed")]);
    const { conditions, evaluated } = assess(settings, failed, at(6 * FIVE));
    expect(decide(settings, state, conditions, at(6 * FIVE), evaluated).messages).to.deep.equal([]);
  });

  it("resolves only after two clear checks in a row, and a re-fire within the hour must hold two checks", function () {
    let state = decide(settings, emptyAlertState(), [failing("offsite-lag")], NOW).state;
    const step = (holds: boolean, i: number) => {
      const d = decide(settings, state, holds ? [failing("offsite-lag")] : [], at(i * FIVE));
      state = d.state;
      return d.messages.map((m) => m.state);
    };
    expect(step(false, 1)).to.deep.equal([]);
    expect(step(false, 2)).to.deep.equal(["resolved"]);
    expect(step(true, 3)).to.deep.equal([]); // resolved 5 min ago: one check is not enough
    expect(step(false, 4)).to.deep.equal([]);
    expect(step(true, 5)).to.deep.equal([]);
    expect(step(true, 6)).to.deep.equal(["firing"]);
    expect(step(true, 7)).to.deep.equal([]);
  });

  it("no storm: 300 checks alternating firing and clear send at most a handful of messages", function () {
    let state: AlertState = emptyAlertState();
    const sent: string[] = [];
    for (let i = 0; i < 300; i += 1) {
      const d = decide(settings, state, i % 2 ? [] : [failing("backup-missed")], at(i * FIVE));
      sent.push(...d.messages.map((m) => m.state));
      state = d.state;
    }
    expect(sent.length).to.be.at.most(3);
    expect(sent[0]).to.equal("firing");
    expect(sent).to.not.include("resolved");
  });

  it("keeps the state it decided when alerts.json is missing, torn or older than it", function () {
    const kept = decide(settings, emptyAlertState(), [failing("backup-failed")], NOW).state;
    expect(newerState(null, kept)).to.equal(kept);
    expect(newerState({ ...emptyAlertState() }, kept)).to.equal(kept); // no updatedAt: older
    const older = { ...emptyAlertState(), updatedAt: hoursBefore(1).toISOString() };
    expect(newerState(older, kept)).to.equal(kept);
    const newer = { ...emptyAlertState(), updatedAt: at(1000).toISOString() };
    expect(newerState(newer, kept)).to.equal(newer);
    expect(newerState(older, undefined)).to.equal(older);
  });

  it("two writers of alerts.json never share a temporary name", function () {
    const a = alertTempName("/backups/alerts.json");
    const b = alertTempName("/backups/alerts.json");
    expect(a).to.match(/^\/backups\/alerts\.json\.new\.\d+\.[0-9a-f]{8}$/);
    expect(a).to.not.equal(b);
  });

  it("a check that outlives its deadline is dropped: null at the deadline, its signal aborted", async function () {
    let seen: AbortSignal | undefined;
    const started = Date.now();
    const result = await withDeadline((signal) => {
      seen = signal;
      return new Promise<string>((resolve) => setTimeout(() => resolve("late"), 2000));
    }, 50);
    expect(result).to.equal(null);
    expect(Date.now() - started).to.be.below(1000);
    expect(seen?.aborted).to.equal(true);
    expect(await withDeadline(async () => "quick", 1000)).to.equal("quick");
  });
});
