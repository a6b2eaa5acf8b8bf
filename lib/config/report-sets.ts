// The report sets an app may ask for (`apps.<app>.reports`). The config
// validates names against this list; design-docs/index.ts builds one design
// document per name and must cover exactly these (its REPORT_SETS is typed
// by ReportSet, so a set missing on either side does not compile).
export const REPORT_SET_NAMES = ['fail2ban', 'correlated'] as const;

export type ReportSet = (typeof REPORT_SET_NAMES)[number];
