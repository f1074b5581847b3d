/**
 * The repository's check started beside a backup's lookup (restore, verify): the verification takes that
 * very check once and records it, a lookup that fails records nothing, and another verification checks again.
 */
import { expect } from "chai";
import type { OpsSession } from "../../../ops/engine/session";
import type { RunResult } from "../../../ops/engine/docker";
import { besideCheck, repositoryProblems } from "../../../ops/backup/repositoryCheck";

/** A session whose execs are recorded; `restic check` exits `checkCode` after `checkMs`. */
function fakeSession(checkCode = 0, checkMs = 30) {
  const log: string[] = [];
  const session = {
    exec: async (script: string, _args?: readonly string[], options?: { input?: string }) => {
      if (script.includes("lrestic check")) {
        log.push("check started");
        await new Promise((resolve) => setTimeout(resolve, checkMs));
        log.push("check ended");
        return { code: checkCode, stdout: "", stderr: "Fatal: pack 1234 damaged\n" } as RunResult;
      }
      if (script.startsWith("cat >")) {
        log.push(`record ${JSON.parse(options?.input ?? "{}").during}`);
      }
      return { code: 0, stdout: "2026-12-06T10:00:00Z\n", stderr: "" } as RunResult;
    },
    hostTime: async () => "2026-12-06T10:00:00Z",
  };
  return { session: session as unknown as OpsSession, log };
}

describe("the repository's check beside a backup's lookup", function () {
  it("runs while the lookup runs, and the verification takes that check instead of starting one", async function () {
    const { session, log } = fakeSession(1);
    const entry = await besideCheck(session, "b1", async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.push("looked up");
      return { id: "b1" };
    });
    expect(entry).to.deep.equal({ id: "b1" });
    expect(log.slice(0, 2)).to.deep.equal(["check started", "looked up"]);
    expect(await repositoryProblems(session, "verify b1")).to.deep.equal([
      "restic check: Fatal: pack 1234 damaged",
    ]);
    expect(log.filter((line) => line === "check started")).to.have.length(1);
    expect(log).to.include("record verify b1");
  });

  it("a lookup that fails is refused at once, and records no check", async function () {
    const { session, log } = fakeSession(1, 200);
    let error: Error | undefined;
    await besideCheck(session, "missing", async () => {
      throw new Error("Backup missing not found");
    }).catch((err: Error) => (error = err));
    expect(error?.message).to.equal("Backup missing not found");
    // Refused in the same turn of the event loop, not after the check's timer: whatever the machine's load.
    expect(log, "waited for the check").to.deep.equal(["check started"]);
    // The next verification of the session checks again, and records only its own.
    expect(await repositoryProblems(session, "verify b1")).to.have.length(1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(log.filter((line) => line.startsWith("record"))).to.deep.equal(["record verify b1"]);
  });

  it("a check that cannot even start is no unhandled rejection when its lookup fails", async function () {
    const { session } = fakeSession();
    session.exec = async () => {
      throw new Error("the session's container is gone");
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      await besideCheck(session, "b1", async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw new Error("Backup b1 not found");
      }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    expect(unhandled).to.deep.equal([]);
  });

  it("is taken once: a later verification, or one of another backup, checks again; only taken checks are recorded", async function () {
    const { session, log } = fakeSession(0, 1);
    await besideCheck(session, "b1", async () => ({ id: "b1" }));
    expect(await repositoryProblems(session, "verify b1")).to.deep.equal([]);
    expect(await repositoryProblems(session, "verify b1")).to.deep.equal([]);
    await besideCheck(session, "b2", async () => ({ id: "b2" }));
    expect(await repositoryProblems(session, "verify b3")).to.deep.equal([]);
    expect(log.filter((line) => line === "check started")).to.have.length(4);
    expect(log.filter((line) => line.startsWith("record"))).to.deep.equal([
      "record verify b1",
      "record verify b1",
      "record verify b3",
    ]);
  });
});
