/**
 * The names a rollback or reset-app hands to Django's `migrate` come from django_migrations, which the
 * application's own database role may write. A planted name is refused before anything runs, and the
 * Python that runs the steps never lets a name reach `migrate`'s argument parser, nor reports success when
 * `migrate` exits instead of returning.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  migrateCode,
  plannedReversal,
  requireMigrateNames,
  reversalSteps,
} from "../../../ops/database/django";

/**
 * A stand-in for the parts of Django the code imports. `call_command` behaves as Django's does for what
 * matters here: positional arguments go through argparse, so one that starts with `-` is an option (`-h`
 * prints help and exits 0); keyword arguments are the options' values as they are.
 */
const FAKE_DJANGO: Record<string, string> = {
  "django/__init__.py": "",
  "django/db.py": [
    "import contextlib",
    "class transaction:",
    "    @staticmethod",
    "    @contextlib.contextmanager",
    "    def atomic():",
    "        yield",
    "        print('committed', flush=True)",
  ].join("\n"),
  "django/core/__init__.py": "",
  "django/core/management.py": [
    "import argparse, json",
    "def call_command(name, *args, **options):",
    "    parser = argparse.ArgumentParser(prog='migrate')",
    "    parser.add_argument('app_label', nargs='?')",
    "    parser.add_argument('migration_name', nargs='?')",
    "    parsed = vars(parser.parse_args(list(args)))",
    "    parsed.update({k: v for k, v in options.items() if k in ('app_label', 'migration_name')})",
    "    if parsed['migration_name'] == 'exits':",
    "        raise SystemExit(0)",
    "    print('ran ' + json.dumps(parsed, sort_keys=True), flush=True)",
  ].join("\n"),
};

function runCode(code: string): { status: number | null; stdout: string; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-django-"));
  try {
    for (const [file, content] of Object.entries(FAKE_DJANGO)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), content);
    }
    const result = spawnSync("python3", ["-c", code], {
      env: { ...process.env, PYTHONPATH: dir },
      encoding: "utf8",
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("migrate names from django_migrations", function () {
  it("a planted app or migration name is refused before any step, naming where it came from; Django's own names pass", function () {
    for (const app of ["-h", "--fake", "documents --fake", "a\nb", "", "x;y"]) {
      expect(() => plannedReversal({ [app]: "0002_x" }, {}, "1.0.0"), JSON.stringify(app)).to.throw(
        /^django_migrations names .* which is no Django app label or migration name .*: no migration was run\./,
      );
    }
    // From the deployment record of the release gone back to: that record is what names it.
    expect(() => plannedReversal({ documents: "0002_x" }, { documents: "-h" }, "1.0.0")).to.throw(
      /^The deployment record of 1\.0\.0 names the migration "-h" for the app "documents"/,
    );
    // The plan alone (what record-deployment asks to see whether a rollback is done) never refuses.
    expect(reversalSteps({ "-h": "x" }, {})).to.deep.equal([{ app: "-h", to: "zero" }]);
    expect(
      plannedReversal(
        { documents: "0002_x", café: "0001_initial" },
        { documents: "0001_a" },
        "1.0.0",
      ),
    ).to.deep.equal([
      { app: "documents", to: "0001_a" },
      { app: "café", to: "zero" },
    ]);
    expect(() =>
      requireMigrateNames([{ app: "auth", to: "0012_alter_user_first_name_max_length" }]),
    ).not.to.throw();
    expect(() => migrateCode([["-h", "zero"]])).to.throw(/^django_migrations names "-h"/);
  });

  it("the steps reach migrate as its options' values, not its arguments, and in one transaction", function () {
    const run = runCode(migrateCode([["documents", "zero"], []]));
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stdout.split("\n").filter(Boolean)).to.deep.equal([
      "migrate documents zero",
      'ran {"app_label": "documents", "migration_name": "zero"}',
      "migrate ",
      'ran {"app_label": null, "migration_name": null}',
      "committed",
    ]);
  });

  it("a migrate that exits instead of returning fails the run, with nothing committed", function () {
    const run = runCode(migrateCode([["documents", "exits"]]));
    expect(run.status).not.to.equal(0);
    expect(run.stderr).to.contain("migrate exited (0) instead of applying its step");
    expect(run.stdout).not.to.contain("committed");
  });
});
