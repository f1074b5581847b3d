/**
 * What `evidence` and `health` show of alerts, from Settings (how many targets) and alerts.json (the
 * targets as the scheduler has them, redacted; what is firing; the last message and who got it). Never a
 * target's URL: the files holding them exist only inside the scheduler container.
 */
import { alertTargetCount, Settings } from "../../model/settings";
import type { AlertState } from "../store/records";
import { readAlertState } from "./check";

export interface AlertReport {
  readonly configured: { readonly apprise: number; readonly webhook: boolean };
  /** Redacted, as the scheduler last reported them; null before its first check. */
  readonly targets: string[] | null;
  readonly firing: { condition: string; since: string; summary: string }[];
  readonly lastAlert: AlertState["lastAlert"];
  readonly problem?: string;
}

/** Null when the stack has no targets. */
export async function alertReport(settings: Settings): Promise<AlertReport | null> {
  if (alertTargetCount(settings.alerts) === 0) {
    return null;
  }
  const configured = {
    apprise: settings.alerts.apprise?.length ?? 0,
    webhook: settings.alerts.webhook !== undefined,
  };
  try {
    const state = await readAlertState(settings);
    return {
      configured,
      targets: state?.targets ?? null,
      firing: Object.entries(state?.active ?? {}).map(([condition, a]) => ({
        condition,
        since: a.since,
        summary: a.summary,
      })),
      lastAlert: state?.lastAlert ?? null,
    };
  } catch (err) {
    return {
      configured,
      targets: null,
      firing: [],
      lastAlert: null,
      problem: `alerts.json cannot be read: ${(err as Error).message.split("\n")[0]}`,
    };
  }
}

/** One line for `health`: targets, what is firing, the last message. */
export function describeAlerts(report: AlertReport | null): string {
  if (!report) {
    return "alerts: no targets (`edms:alerts`): a failing backup reaches nobody";
  }
  const { apprise, webhook } = report.configured;
  const targets = `${apprise} Apprise URL(s)${webhook ? " + webhook" : ""}`;
  const firing = report.firing.length
    ? `FIRING: ${report.firing.map((f) => `${f.condition} since ${f.since}`).join(", ")}`
    : "nothing firing";
  const last = report.lastAlert;
  const lastText = last
    ? `last sent ${last.message.at} (${last.message.state} ${last.message.condition}, ${last.deliveries.filter((d) => d.ok).length}/${last.deliveries.length} reached)`
    : "none sent yet";
  return `alerts to ${targets}: ${firing}; ${lastText}${report.problem ? `; ${report.problem}` : ""}`;
}
