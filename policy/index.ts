// Run with: pulumi preview --policy-pack policy  (after `npm ci` in this folder)
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("edms-guardrails", { policies });
