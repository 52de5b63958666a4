import { Type } from '@sinclair/typebox';

/** What `POST /login` and `POST /token/refresh` answer: a short-lived access token and its refresh token. */
export const TokenPair = Type.Object(
  {
    access_token: Type.String({
      description: 'JWT (HS256) to send as `Authorization: Bearer <token>`',
      examples: ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.signature'],
    }),
    token_type: Type.Literal('bearer', { description: 'Always `bearer`' }),
    expires_in: Type.Integer({ description: 'Seconds until the access token expires', examples: [1800] }),
    refresh_token: Type.String({
      description:
        'Opaque, single-use token for `POST /token/refresh` (never a bearer token). Keep it secret: presenting it ' +
        'a second time revokes every token of its login session',
      examples: ['q3Vh0Zb7m2cY1kq1p2O8dC5nJ0wX4eT9rS6uI3oA7lE'],
    }),
    refresh_expires_in: Type.Integer({ description: 'Seconds until the refresh token expires', examples: [604800] }),
  },
  {
    $id: 'TokenPair',
    title: 'TokenPair',
    description: 'A bearer access token and the refresh token that replaces it when it expires',
    examples: [
      {
        access_token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.signature',
        token_type: 'bearer',
        expires_in: 1800,
        refresh_token: 'q3Vh0Zb7m2cY1kq1p2O8dC5nJ0wX4eT9rS6uI3oA7lE',
        refresh_expires_in: 604800,
      },
    ],
  },
);
