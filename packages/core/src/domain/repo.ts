/** A repo's description by `repo_type`, as the client sends it with `repos/init`. */
export type WireRepoInfo =
  | { repo_type: 'remote'; repo_name: string }
  | { repo_type: 'local'; repo_dir: string }
  | { repo_type: 'virtual' };

/** Credentials to clone a remote repo. */
export interface WireRepoCreds {
  clone_url: string;
  private_key: string | null;
  oauth_token: string | null;
}

/** A repo on the wire (`repos/list`). */
export interface WireRepoHead {
  repo_id: string;
  repo_info: WireRepoInfo;
}

/** A repo with the caller's credentials (`repos/get`). */
export interface WireRepoHeadWithCreds extends WireRepoHead {
  repo_creds: WireRepoCreds | null;
}
