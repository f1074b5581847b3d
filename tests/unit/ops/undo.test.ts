/**
 * A restore's stop and undo with the engine replaced by stubs: whatever fails (the stop, the wait for the app
 * role's sessions, the undo backup), the web and worker found running are the ones the restore starts again,
 * and its error says whether that worked.
 */
import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import * as backups from "../../../ops/backup/create";
import { startAgain, stopAndRecordUndo } from "../../../ops/backup/undo";
import { failure } from "../../../ops/core/errors";
import * as log from "../../../ops/core/log";
import * as appRole from "../../../ops/database/appRole";
import * as postgres from "../../../ops/database/postgres";
import * as dockerLib from "../../../ops/engine/docker";
import * as services from "../../../ops/engine/services";
import type { OpsSession } from "../../../ops/engine/session";
import type { BackupEntry } from "../../../ops/store/restic";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

describe("a restore's stop and undo", function () {
  const settings = validateSettings("s", { environment: "staging", version: "1.0.0" });
  const entry = { id: "2026-12-01T00-00-00Z-target" } as BackupEntry;
  const saved: [object, string, unknown][] = [];
  let running: string[];
  let calls: string[][];
  let stopFails: boolean;
  let waitFails: boolean;
  let backupFails: boolean;
  let startFails: boolean;
  let markers: string[];

  const stub = <T extends object>(module: T, name: keyof T & string, value: unknown) => {
    saved.push([module, name, module[name]]);
    (module as Mutable<T>)[name] = value as T[keyof T & string];
  };
  const session = {
    settings,
    pinned: new Set<string>(),
    hostTime: async () => "2026-12-01T00:00:00Z",
    exec: async (_script: string, _args: string[], options: { input?: string }) => {
      markers.push(options.input ?? "");
      return { code: 0, stdout: "", stderr: "" };
    },
  } as unknown as OpsSession;

  before(() => {
    stub(services, "runningAppContainers", async () =>
      ["s-web", "s-worker"].filter((n) => running.includes(n)),
    );
    stub(dockerLib, "docker", async (args: string[]) => {
      calls.push(args);
      if (args[0] === "stop" && stopFails) {
        throw failure(
          "docker stop s-worker: tried to kill container, but did not receive an exit event",
          "-",
        );
      }
      if (args[0] === "start" && startFails) {
        return {
          code: 1,
          stdout: "",
          stderr: "Error response from daemon: no space left on device",
        };
      }
      return { code: 0, stdout: "", stderr: "" };
    });
    stub(appRole, "waitForAppSessions", async () => {
      if (waitFails) {
        throw failure("sessions of edms_app are still there after 5 s", "-");
      }
    });
    stub(postgres, "hasSchema", async () => true);
    stub(backups, "createBackup", async (_s: unknown, _r: unknown, dumpAfter: Promise<unknown>) => {
      await dumpAfter;
      if (backupFails) {
        throw failure("the dump failed", "-");
      }
      return { entry: { id: "2026-12-01T00-00-01Z-pre-restore" } };
    });
    log.setQuiet(true);
  });
  after(() => {
    for (const [module, name, value] of saved.reverse()) {
      (module as Record<string, unknown>)[name] = value;
    }
    log.setQuiet(false);
  });
  beforeEach(() => {
    running = ["s-web", "s-worker"];
    calls = [];
    markers = [];
    [stopFails, waitFails, backupFails, startFails] = [false, false, false, false];
  });

  const attempt = { earlier: null, undo: null, writers: [] };

  it("records the undo and the writers it stopped", async function () {
    running = ["s-worker"];
    const { attempt: done, error } = await stopAndRecordUndo(session, entry, attempt);
    expect(error).to.equal(undefined);
    expect(done.writers).to.deep.equal(["s-worker"]);
    expect(done.undo).to.equal("2026-12-01T00-00-01Z-pre-restore");
    expect(calls).to.deep.include(["stop", "s-worker"]);
    expect(JSON.parse(markers[0])).to.deep.include({ id: entry.id, undo: done.undo });
  });

  for (const [what, set, message] of [
    ["the stop", () => (stopFails = true), /^docker stop s-worker/],
    ["the wait for the app role's sessions", () => (waitFails = true), /still there after 5 s/],
    ["the undo backup", () => (backupFails = true), /^the dump failed/],
  ] as const) {
    it(`when ${what} fails: the error, the writers found running to start again, no marker`, async function () {
      set();
      const { attempt: done, error } = await stopAndRecordUndo(session, entry, attempt);
      expect(error?.message).to.match(message);
      expect(done.writers).to.deep.equal(["s-web", "s-worker"]);
      expect(markers, "a marker written").to.deep.equal([]);
    });
  }

  it("says whether starting them again worked, and how to start them when it did not", async function () {
    expect(await startAgain([])).to.equal("");
    expect(await startAgain(["s-web", "s-worker"])).to.equal(" and web/worker are started again");
    // One start each, at once: the CLI would start the ones it is given one after the other.
    expect(calls).to.deep.include.members([
      ["start", "s-web"],
      ["start", "s-worker"],
    ]);
    startFails = true;
    expect(await startAgain(["s-web", "s-worker"])).to.equal(
      ", but starting s-web, s-worker again failed (Error response from daemon: no space left on device): " +
        "start them with `docker start s-web s-worker`",
    );
  });
});
