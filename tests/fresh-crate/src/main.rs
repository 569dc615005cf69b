//! Runs the sync of `Bucket`: the remote (management) cluster from `$REMOTE_KUBECONFIG`, the
//! local one from the usual kubeconfig or in-cluster configuration. Stops on Ctrl-C.

use fresh_operator::Bucket;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sync_core::{Local, Remote, Syncable};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("REMOTE_KUBECONFIG")?;
    let remote =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default())
            .await?;
    let remote = Client::try_from(remote)?;
    let local = Client::try_default().await?;
    Bucket::reconciler(Remote(remote), Local(local))
        .run(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
