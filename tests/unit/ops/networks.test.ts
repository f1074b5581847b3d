/**
 * Issue 20, networks: edms-ops' one-off Django containers sit on the stack's internal data network (where
 * PostgreSQL and Redis are) and get Redis' password as a file, like web and worker; never as argv or env.
 */
import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import * as dockerLib from "../../../ops/engine/docker";
import { runDjango } from "../../../ops/database/django";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

describe("networks (issue 20): edms-ops' one-off Django containers", function () {
  const settings = validateSettings("staging", { environment: "staging", version: "1.0.0" });
  const calls: { args: string[]; input?: string }[] = [];
  const saved = dockerLib.docker;
  const savedEnv = { ...process.env };
  const PASSWORD = "redis-pw-3c9a7d1e";

  before(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (
      args: readonly string[],
      options?: dockerLib.RunOptions,
    ) => {
      const input = options?.input;
      calls.push({
        args: [...args],
        input: Buffer.isBuffer(input) ? input.toString("latin1") : input?.toString(),
      });
      return { code: 0, stdout: "sha256:x\n", stderr: "" };
    }) as typeof dockerLib.docker;
    Object.assign(process.env, {
      EDMS_POSTGRES_PASSWORD: "p",
      EDMS_DJANGO_SECRET_KEY: "k",
      EDMS_REDIS_PASSWORD: PASSWORD,
    });
  });
  after(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = saved;
    process.env = savedEnv;
  });

  it("join the data network only and receive redis_password as a file", async function () {
    await runDjango(settings, {
      image: "edms-sample/backend:1.0.0",
      command: ["python3", "manage.py", "migrate"],
    });
    const create = calls.find((c) => c.args[0] === "create")!;
    const networks = create.args.flatMap((w, i) => (w === "--network" ? [create.args[i + 1]] : []));
    expect(networks).to.deep.equal([settings.names.dataNetwork]);
    expect(create.args).to.include("REDIS_PASSWORD_FILE=/run/secrets/redis_password");
    const copied = calls.find((c) => c.args[0] === "cp")!;
    expect(copied.input).to.contain("secrets/redis_password");
    expect(copied.input).to.contain(PASSWORD);
    for (const { args } of calls) {
      expect(args.join(" ")).not.to.contain(PASSWORD);
    }
  });
});
