import { Type, type Static } from '@sinclair/typebox';
import { Timestamp } from './common.js';
import { CANONICAL_NAME_RULES, canonicalName } from './names.js';
import { BuildStatus } from './build.js';

/** Printable, no control characters, no leading or trailing blanks; one spelling per name (see names.ts). */
export const ProjectName = Type.String({
  ...canonicalName,
  minLength: 1,
  maxLength: 100,
  pattern: '^[^\\s\\u0000-\\u001f\\u007f](?:[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f])?$',
  description: `Unique project name, 1–100 printable characters without leading or trailing blanks. ${CANONICAL_NAME_RULES}`,
  examples: ['DemoProj'],
});

/** http(s)://, ssh://, git:// URLs, or the scp-like `user@host:path` form git accepts. */
export const RepoUrl = Type.String({
  minLength: 1,
  maxLength: 2048,
  pattern:
    "^(?:(?:https?|ssh|git|git\\+ssh)://(?:[\\w.~%!$&'()*+,;=:-]+@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\\d{1,5})?(?:/[^\\s\\u0000-\\u001f\\u007f]*)?|[\\w.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:[^\\s\\u0000-\\u001f\\u007f]+)$",
  description: 'Repository URL: http(s)://, ssh://, git:// or the scp-like `git@host:org/repo.git`',
  examples: ['https://github.com/demo/repo'],
});

/** A git branch name as `git check-ref-format --branch` would accept it (ASCII subset). */
export const BranchName = Type.String({
  ...canonicalName,
  minLength: 1,
  maxLength: 255,
  pattern: '^(?!/)(?!.*//)(?!.*\\.\\.)(?!.*@\\{)(?!.*\\.lock$)(?!.*/$)(?!.*\\.$)(?!-)[^\\u0000-\\u0020~^:?*\\[\\\\\\u007f]+$',
  description: `Git branch name. ${CANONICAL_NAME_RULES}`,
  examples: ['main'],
});

export const Project = Type.Object(
  {
    id: Type.Integer({ description: 'Project identifier', examples: [1] }),
    name: ProjectName,
    repo: RepoUrl,
    default_branch: { ...BranchName, description: 'Branch built when a trigger names none' },
    last_build_status: Type.Union([BuildStatus, Type.Null()], {
      description: 'Status of the most recent build, or null before the first one',
      examples: ['success'],
    }),
    created_at: Timestamp('When the project was created'),
    updated_at: Timestamp('When the project was last changed'),
  },
  { $id: 'Project', title: 'Project', description: 'A project: a named repository that Usine builds' },
);
export type ProjectBody = Static<typeof Project>;
