//! Deleting and archiving Data Center repositories. Data Center sends no
//! webhook for either (backstage#34407): only a listing shows them.

use crate::SimError;
use crate::dataset::RepoRef;
use crate::push::not_found;
use crate::state::AppState;

impl AppState {
    /// Deletes a Data Center repository.
    pub(crate) fn delete_repo(&self, repo: &RepoRef) -> Result<(), SimError> {
        let RepoRef::Server { project, slug } = repo else {
            return Err(SimError::Webhook(format!(
                "cannot delete {repo:?}: only Data Center repositories are deleted here"
            )));
        };
        if self.edit_dataset(|dataset| dataset.delete_server_repo(project, slug)) {
            Ok(())
        } else {
            Err(not_found(repo))
        }
    }

    /// Archives (or unarchives) a Data Center repository.
    pub(crate) fn set_archived(&self, repo: &RepoRef, archived: bool) -> Result<(), SimError> {
        let RepoRef::Server { project, slug } = repo else {
            return Err(SimError::Webhook(format!(
                "cannot archive {repo:?}: only Data Center repositories are archived here"
            )));
        };
        let found = self.edit_dataset(|dataset| match dataset.server_repo_mut(project, slug) {
            Some(repo) => {
                repo.archived = archived;
                true
            }
            None => false,
        });
        if found { Ok(()) } else { Err(not_found(repo)) }
    }
}
