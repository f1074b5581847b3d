/**
 * The script every marker (restore, rollback, last restore) is written with, run by this machine's sh and,
 * where there is one, busybox's (the official restic image's shell): a marker is replaced only by a whole
 * JSON object, so an edms-ops killed before or while handing it over never blanks the one a re-run needs.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { markerScript } from "../../../ops/store/markers";

const SHELLS = [["sh"], ...(fs.existsSync("/bin/busybox") ? [["/bin/busybox", "sh"]] : [])];

describe("markers are written whole or not at all", function () {
  for (const shell of SHELLS) {
    it(`${shell.join(" ")}: a whole object replaces the marker; empty or cut-short input leaves it`, function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "marker-"));
      const marker = path.join(dir, ".restore-in-progress");
      const earlier = JSON.stringify({ id: "a", undo: "u", started: "2026-12-01T00:00:00Z" });
      fs.writeFileSync(marker, earlier);
      const write = (input: string) =>
        spawnSync(shell[0], [...shell.slice(1), "-c", markerScript(), "edms-ops", marker], {
          input,
        }).status;
      expect(write(""), "nothing handed over").to.not.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(earlier);
      expect(write(earlier.slice(0, 20)), "cut short").to.not.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(earlier);
      const next = JSON.stringify({ id: "b", undo: "u", started: "2026-12-01T00:00:00Z" });
      expect(write(next)).to.equal(0);
      expect(fs.readFileSync(marker, "utf8")).to.equal(next);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }
});
