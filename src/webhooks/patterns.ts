import { EVENT_TYPES } from '../schemas/event.js';

/** The groups of event types a hook can subscribe to with `<group>.*`. */
const GROUPS = [...new Set(EVENT_TYPES.map((type) => type.split('.')[0]!))];

/**
 * What a hook may list in `events`: `*` (everything), `<group>.*` (`build.*`), or one event type (`job.failed`).
 * Returns why a pattern is refused, or undefined.
 */
export function refusePattern(pattern: string): string | undefined {
  if (pattern === '*' || (EVENT_TYPES as readonly string[]).includes(pattern)) return undefined;
  if (pattern.endsWith('.*') && GROUPS.includes(pattern.slice(0, -2))) return undefined;
  return `\`${pattern}\` is not an event type, \`<group>.*\` (${GROUPS.map((group) => `${group}.*`).join(', ')}) or \`*\``;
}

/** Does a hook listing `patterns` want an event of `type`? */
export function hookMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => pattern === '*' || pattern === type || (pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1))));
}
