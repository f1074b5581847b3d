/**
 * Every operator error names its next step. Walks the sources: each `refuse`, `failure`, `busy`,
 * `incomplete` and `hostFailure(message, fix)` in ops/ (the only ways to make an OpsError), and checks every text the fix can take
 * (both branches of a condition, a named constant) says what to do.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { busy, EXIT, failure, incomplete, OpsError, refuse } from "../../../ops/core/errors";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

interface Site {
  readonly where: string;
  readonly helper: string;
  readonly args: readonly ts.Expression[];
  readonly file: ts.SourceFile;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(full) : e.name.endsWith(".ts") ? [full] : [];
  });
}

function errorSites(): { sites: Site[]; direct: string[] } {
  const sites: Site[] = [];
  const direct: string[] = [];
  for (const file of sourceFiles(path.join(REPO_ROOT, "ops"))) {
    const source = ts.createSourceFile(
      file,
      fs.readFileSync(file, "utf8"),
      ts.ScriptTarget.ES2022,
      true,
    );
    const where = (node: ts.Node) =>
      `${path.relative(REPO_ROOT, file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
        const name = node.expression.text;
        if (["refuse", "failure", "busy", "incomplete", "hostFailure"].includes(name)) {
          sites.push({ where: where(node), helper: name, args: node.arguments, file: source });
        }
      }
      const constructed =
        ts.isNewExpression(node) && ts.isIdentifier(node.expression) ? node.expression.text : "";
      const maker: Record<string, string> = { OpsError: "errors.ts", HostFault: "hostFault.ts" };
      if (
        constructed === "Error" ||
        (constructed in maker && !file.endsWith(`${path.sep}${maker[constructed]}`))
      ) {
        direct.push(`${where(node)} new ${constructed}(…)`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { sites, direct };
}

/** The source file a name is imported from (relative imports only), to resolve a shared constant. */
function importedFrom(file: ts.SourceFile, name: string): ts.SourceFile | undefined {
  for (const statement of file.statements) {
    if (
      ts.isImportDeclaration(statement) &&
      ts.isStringLiteral(statement.moduleSpecifier) &&
      statement.moduleSpecifier.text.startsWith(".") &&
      statement.importClause?.namedBindings &&
      ts.isNamedImports(statement.importClause.namedBindings) &&
      statement.importClause.namedBindings.elements.some((e) => e.name.text === name)
    ) {
      const base = path.resolve(path.dirname(file.fileName), statement.moduleSpecifier.text);
      const target = [`${base}.ts`, path.join(base, "index.ts")].find((f) => fs.existsSync(f));
      return target
        ? ts.createSourceFile(target, fs.readFileSync(target, "utf8"), ts.ScriptTarget.ES2022, true)
        : undefined;
    }
  }
  return undefined;
}

/** Every text an expression can evaluate to, with `${…}` left as "…" (both branches of `?:`). */
function texts(expr: ts.Expression, file: ts.SourceFile): string[] {
  if (ts.isStringLiteral(expr) || ts.isNoSubstitutionTemplateLiteral(expr)) {
    return [expr.text];
  }
  if (ts.isTemplateExpression(expr)) {
    return [expr.head.text + expr.templateSpans.map((s) => `…${s.literal.text}`).join("")];
  }
  if (ts.isParenthesizedExpression(expr)) {
    return texts(expr.expression, file);
  }
  if (ts.isConditionalExpression(expr)) {
    return [...texts(expr.whenTrue, file), ...texts(expr.whenFalse, file)];
  }
  if (ts.isBinaryExpression(expr) && expr.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    return texts(expr.left, file).flatMap((l) => texts(expr.right, file).map((r) => l + r));
  }
  if (ts.isIdentifier(expr)) {
    let found: ts.Expression | undefined;
    const visit = (node: ts.Node): void => {
      if (ts.isVariableDeclaration(node) && node.name.getText() === expr.text && node.initializer) {
        found = node.initializer;
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    if (found) {
      return texts(found, file);
    }
    const imported = importedFrom(file, expr.text);
    return imported ? texts(expr, imported) : [`<unresolved ${expr.text}>`];
  }
  if (ts.isCallExpression(expr) && ts.isIdentifier(expr.expression)) {
    // A helper of the same file that picks the fix: every text it can return.
    const name = expr.expression.text;
    const returned: string[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionDeclaration(node) && node.name?.text === name && node.body) {
        const collect = (inner: ts.Node): void => {
          if (ts.isReturnStatement(inner) && inner.expression) {
            returned.push(...texts(inner.expression, file));
          }
          ts.forEachChild(inner, collect);
        };
        collect(node.body);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    return returned.length ? returned : [`<unresolved ${name}()>`];
  }
  return [`<not a text: ${expr.getText()}>`];
}

// A next step: a command or setting in backticks, or an instruction.
const NEXT_STEP =
  /`[^`]+`|^(Run|Retry|Take|List|Choose|Pass|Set|Start|Install|Fix|Free|Unset|Check|Stop|Import|Export|Use|Load|Rename|Deploy|Do not|Turn|See|Roll back|Known stacks|To |drop|run|fix|finish|use|e\.g\.)/;

describe("operator errors", function () {
  const { sites, direct } = errorSites();

  it("are made only by refuse() and failure(), never by a bare Error or OpsError", function () {
    expect(sites.length, "error sites found").to.be.above(80);
    expect(direct).to.deep.equal([]);
  });

  it("every site gives a message and a fix, and every text the fix can take names a next step", function () {
    const problems: string[] = [];
    for (const site of sites) {
      if (site.args.length !== 2) {
        problems.push(`${site.where}: ${site.helper}() needs (message, fix)`);
        continue;
      }
      for (const fix of texts(site.args[1], site.file)) {
        if (fix.trim().length < 12 || !NEXT_STEP.test(fix.trim())) {
          problems.push(`${site.where}: fix "${fix}" names no next step`);
        }
      }
      for (const message of texts(site.args[0], site.file)) {
        if (message.trim().length < 10) {
          problems.push(`${site.where}: message "${message}" says too little`);
        }
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it("exit codes are a contract: 0 done, 1 failed, 2 refused, 3 incomplete, 75 busy, 70 internal", function () {
    expect(EXIT).to.deep.equal({
      done: 0,
      failed: 1,
      refused: 2,
      incomplete: 3,
      busy: 75,
      internal: 70,
    });
    expect(failure("m", "Retry.").exitCode).to.equal(1);
    expect(refuse("m", "Retry.").exitCode).to.equal(2);
    expect(incomplete("m", "Retry.").exitCode).to.equal(3);
    expect(busy("m", "Retry.").exitCode).to.equal(75);
    // Documented where operators and scripts read it.
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    for (const code of Object.values(EXIT).filter((c) => c !== EXIT.internal)) {
      expect(readme, `README documents exit ${code}`).to.match(new RegExp(`^- \`${code}\` `, "m"));
    }
  });

  it("a busy stack is told apart by its code, not its text (the scheduler's skip)", function () {
    const source = fs.readFileSync(path.join(REPO_ROOT, "ops/schedule/scheduler.ts"), "utf8");
    expect(source).to.match(/exitCode === EXIT\.busy/);
    expect(source).not.to.match(/is busy/);
  });

  it("refusals exit 2, failures 1; the operator reads the message, then the fix", function () {
    const refused = refuse("Nothing to do.", "Run `edms-ops status`.");
    expect(refused).to.be.instanceOf(OpsError).and.to.include({ exitCode: 2 });
    expect(refused.describe()).to.equal("Nothing to do. Run `edms-ops status`.");
    ensureCliBuilt();
    const result = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), "status"],
      {
        encoding: "utf8",
        env: { ...process.env, EDMS_STACK: "" },
      },
    );
    expect(result.status).to.equal(2);
    expect(result.stderr).to.equal(
      "edms-ops: No stack given. Pass `--stack <name>` (e.g. --stack staging) or set EDMS_STACK.\n",
    );
  });
});
