/** The kinds of entity an event can be about. */
export type EventTargetType =
  | 'project' | 'user' | 'fleet' | 'instance' | 'run' | 'job' | 'secret';

/** An entity an event is about, as the events table keeps it. */
export interface StoredEventTarget {
  type: EventTargetType;
  /** Null only for users, which belong to no project. */
  projectId: string | null;
  id: string;
  name: string;
}

/** An event target on the wire. */
export interface WireEventTarget {
  type: string;
  project_id: string | null;
  project_name: string | null;
  is_project_deleted: boolean | null;
  id: string;
  name: string;
}

/** An event on the wire (`/api/events/list`). */
export interface WireEvent {
  id: string;
  message: string;
  recorded_at: string;
  actor_user_id: string | null;
  actor_user: string | null;
  is_actor_user_deleted: boolean | null;
  targets: WireEventTarget[];
}
