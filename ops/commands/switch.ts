import { Command } from "commander";
import { openStack, waitSeconds } from "../core/context";
import { say } from "../core/log";
import { switchProxy, takeOverPort } from "../proxy/switch";

export function register(program: Command): void {
  program
    .command("switch")
    .description(
      "Send traffic to the configured release once its web answers /health/ 200: the proxy reloads seamlessly and the old web drains its in-flight requests. Run by `pulumi up`",
    )
    .option("--wait <seconds>", "how long the new web may take to become healthy", "120")
    .option(
      "--take-over-port",
      "before the proxy is created: stop the web of a deployment without the proxy that still publishes the port, once the new web is healthy (run by `pulumi up`)",
    )
    .addHelpText(
      "after",
      "\nA release that never becomes healthy is stopped and the proxy keeps serving the old one; the command fails.\n\nExample:\n  edms-ops switch --stack staging --wait 120",
    )
    .action(async (opts: { wait: string; takeOverPort?: boolean }, command: Command) => {
      const wait = waitSeconds(opts.wait);
      const settings = await openStack(command);
      if (opts.takeOverPort) {
        say(await takeOverPort(settings, { wait }));
        return;
      }
      const result = await switchProxy(settings, { wait });
      say(
        result.switched
          ? `proxy switched from ${result.from ?? "(none)"} to ${result.to}`
          : `${result.to} already live; nothing to switch`,
      );
    });
}
