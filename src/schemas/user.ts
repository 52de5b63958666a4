import { Type, type Static } from '@sinclair/typebox';
import { ROLES } from '../repositories/users.js';
import { Timestamp } from './common.js';
import { canonicalName } from './names.js';

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

export const Username = Type.String({
  ...canonicalName,
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9._-]+$',
  description:
    'Unique login name, whatever the case (`Alice` and `alice` are one user, who logs in with either): 1–64 ASCII ' +
    'letters, digits, `.`, `_` or `-`. The case given at creation is the one shown.',
  examples: ['alice'],
});

export const RoleName = Type.Union(
  ROLES.map((role) => Type.Literal(role)),
  {
    description: '`viewer` reads; `maintainer` also creates and updates projects and triggers builds; `admin` also manages users and deletes projects',
    examples: ['maintainer'],
  },
);

/** The part of the password policy a schema can say; the rest is in passwordPolicyViolation(). */
export const Password = Type.String({
  minLength: MIN_PASSWORD_LENGTH,
  maxLength: MAX_PASSWORD_LENGTH,
  description: `Password: ${MIN_PASSWORD_LENGTH}–${MAX_PASSWORD_LENGTH} characters, not the username (in any case). Stored only as an argon2id hash.`,
  examples: ['correct-horse-battery'],
});

/** What the schema cannot check: the password must not be the username, whatever the case. */
export function passwordPolicyViolation(username: string, password: string): string | undefined {
  return password.toLowerCase() === username.toLowerCase() ? 'must not be the username' : undefined;
}

/** A user as the API shows it: never the password hash. */
export const User = Type.Object(
  {
    id: Type.Integer({ description: 'User identifier', examples: [2] }),
    username: Username,
    role: RoleName,
    created_at: Timestamp('When the user was created'),
  },
  { $id: 'User', title: 'User', description: 'An account that can log in, with its role' },
);
export type UserBody = Static<typeof User>;
