import { getTableName, sql, type Column } from 'drizzle-orm';

/**
 * `table.column`, always qualified: in a single-table statement Drizzle renders columns bare, which inside a
 * correlated subquery would bind to the subquery's own table (`builds.id` instead of `projects.id`).
 */
export const qualified = (column: Column) => sql`${sql.identifier(getTableName(column.table))}.${sql.identifier(column.name)}`;
