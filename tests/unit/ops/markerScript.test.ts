/**
 * The script every marker (restore, rollback, last restore) is written with, run by dash and by busybox's sh
 * with busybox's own applets (the official restic image's userland): a marker is replaced only by a whole
 * JSON object, so an edms-ops killed before or while handing it over never blanks the one a re-run needs.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { markerScript } from "../../../ops/store/markers";
import { testShells } from "../../harness/shells";

describe("markers are written whole or not at all", function () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "marker-"));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const shell of testShells(root, ["cat", "tail", "sync", "mv"])) {
    it(`${shell.name}: a whole object replaces the marker; empty or cut-short input leaves it`, function () {
      const marker = path.join(fs.mkdtempSync(path.join(root, `${shell.name}-`)), ".marker");
      const earlier = JSON.stringify({ id: "a", undo: "u", started: "2026-12-01T00:00:00Z" });
      fs.writeFileSync(marker, earlier);
      const write = (input: string) =>
        spawnSync("sh", ["-c", markerScript(), "edms-ops", marker], { input, env: shell.env })
          .status;
      expect(write(""), "nothing handed over").to.not.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(earlier);
      expect(write(earlier.slice(0, 20)), "cut short").to.not.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(earlier);
      const next = JSON.stringify({ id: "b", undo: "u", started: "2026-12-01T00:00:00Z" });
      expect(write(next)).to.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(next);
    });
  }
});
