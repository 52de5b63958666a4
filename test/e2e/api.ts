/**
 * The few direct API calls the browser tests make (log in, seed a project, read the OpenAPI document), typed with
 * the client generated from the OpenAPI document (clients/typescript/usine.d.ts, openapi-typescript).
 */
import type { paths } from '../../clients/typescript/usine.js';

type LoginOperation = paths['/login']['post'];
export type LoginBody = LoginOperation['requestBody']['content']['application/json'];
export type LoginAnswer = LoginOperation['responses'][200]['content']['application/json'];

type CreateProjectOperation = paths['/projects']['post'];
export type CreateProjectBody = CreateProjectOperation['requestBody']['content']['application/json'];
export type Project = CreateProjectOperation['responses'][201]['content']['application/json'];

type ListProjectsOperation = paths['/projects']['get'];
export type ProjectPage = ListProjectsOperation['responses'][200]['content']['application/json'];

type TriggerOperation = paths['/projects/{id}/build']['post'];
export type Build = TriggerOperation['responses'][201]['content']['application/json'];

async function json<T>(response: Response, expected: number, what: string): Promise<T> {
  const text = await response.text();
  if (response.status !== expected) throw new Error(`${what}: ${response.status} instead of ${expected}: ${text}`);
  return JSON.parse(text) as T;
}

export async function login(baseUrl: string, body: LoginBody = { username: 'admin', password: 'admin123' }): Promise<LoginAnswer> {
  const response = await fetch(`${baseUrl}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return json<LoginAnswer>(response, 200, 'POST /login');
}

export async function createProject(baseUrl: string, token: string, body: CreateProjectBody): Promise<Project> {
  const response = await fetch(`${baseUrl}/projects`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return json<Project>(response, 201, 'POST /projects');
}

/** The parts of the OpenAPI document the page is checked against. */
export interface OpenApiDocument {
  info: { title: string; version: string };
  tags?: { name: string }[];
  paths: Record<string, Record<string, { tags?: string[]; summary?: string }>>;
}

export async function openApiDocument(baseUrl: string): Promise<OpenApiDocument> {
  return json<OpenApiDocument>(await fetch(`${baseUrl}/apidocs/json`), 200, 'GET /apidocs/json');
}
